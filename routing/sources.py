from django.db import IntegrityError, transaction

from audit.models import AuditAction
from audit.services import audit_record
from routing.models import Source


def source_create(*, name: str, by=None) -> tuple[Source, str]:
    """Create a capture source; returns it and its token in clear (stored only as a hash)."""
    name = name.strip()
    if not name:
        raise ValueError("Give the source a name, e.g. 'website-form'.")
    source = Source(name=name)
    token = source.set_new_token()
    try:
        with transaction.atomic():
            source.save()
            audit_record(
                action=AuditAction.SOURCE_CREATED,
                actor=by,
                outcome="created",
                data={"source": name, "token_prefix": source.token_prefix},
            )
    except IntegrityError:
        raise ValueError(f"A source named {name!r} exists already.") from None
    return source, token
