from django.contrib.auth.models import AbstractBaseUser


def history_person(request=None, **kwargs):
    """django-simple-history's history_user: a signed-in person, never a capture-source principal."""
    user = getattr(request, "user", None)
    return user if isinstance(user, AbstractBaseUser) else None
