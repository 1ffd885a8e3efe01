from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from audit.models import AuditAction
from audit.services import audit_record
from routing.availability.models import TimeOff, WorkingHours
from routing.capture.services import (
    schema_version_problems,
    schema_version_register,
    schema_version_retire,
    schema_version_retire_problem,
)
from routing.changes.history import ChangeKind
from routing.changes.queues import ROUTING_FIELDS
from routing.erasure import person_erase
from routing.governance.forms import BoundedJSONField, DraftChecks
from routing.governance.models import RulePromotion, RuleSignOff, RuleVersion
from routing.governance.services import rule_draft_save
from routing.intake_schema import version_names, version_registered, version_retired
from routing.integrations.addresses import url_problem
from routing.integrations.models import (
    DeliveryAttempt,
    DeliveryTarget,
    EnrichmentProvider,
    EventType,
    OutboxEvent,
    SignatureScheme,
)
from routing.integrations.signing import secret_generate, secret_problem
from routing.integrations.targets import target_overlap_end, target_secret_replaced
from routing.models import Lead, PersonalToken, Queue, QueueMembership, Rule, SchemaVersion, Source
from routing.text import refused_character
from routing.tokens import personal_token_revoke


class PlainNameForm(forms.ModelForm):
    """Refuses control and bidirectional-override characters in `name` (routing/text.py)."""

    def clean_name(self):
        name = self.cleaned_data["name"]
        if refused_character(name or ""):
            raise forms.ValidationError(refused_character(name))
        return name


class SourceForm(PlainNameForm):
    def clean_schema_version(self):
        version = (self.cleaned_data.get("schema_version") or "").strip()
        if version and not version_registered(version):
            known = version_names()
            raise forms.ValidationError(f"No capture schema version {version!r}; registered: {known}.")
        if version and (retired := version_retired(version)):
            raise forms.ValidationError(
                f"Version {version!r} retires at {retired:%Y-%m-%d %H:%M} UTC; choose a live one."
            )
        return version


@admin.register(Source)
class SourceAdmin(SimpleHistoryAdmin):
    form = SourceForm
    list_display = ["name", "owner", "schema_version", "unknown_fields", "token_prefix", "is_active", "created_at"]
    readonly_fields = ["token_prefix", "created_at"]
    fields = [
        "name",
        "owner",
        "is_active",
        "shares_lead_ids",
        "schema_version",
        "unknown_fields",
        "token_prefix",
        "created_at",
    ]
    autocomplete_fields = ["owner"]

    def has_add_permission(self, request):
        return False  # tokens are issued by `manage.py create_source`, which shows the token once


class SchemaVersionForm(forms.ModelForm):
    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None:
            problems = schema_version_problems(
                version=cleaned.get("version"),
                fields=cleaned.get("fields"),
                effective_from=cleaned.get("effective_from"),
                retires_at=cleaned.get("retires_at"),
            )
            for name, messages in problems.items():
                self.add_error(name if name in self.fields else None, messages)
        elif "retires_at" in self.changed_data:
            if problem := schema_version_retire_problem(self.instance, cleaned.get("retires_at")):
                self.add_error("retires_at", problem)
        return cleaned


@admin.register(SchemaVersion)
class SchemaVersionAdmin(admin.ModelAdmin):
    """Register a capture schema version (GET /api/v1/schema-versions/ lists them). Once registered only its
    retirement may change: leads were read under it."""

    form = SchemaVersionForm
    list_display = ["version", "effective_from", "retires_at", "created_by", "created_at"]
    fields = ["version", "fields", "effective_from", "retires_at", "notes", "created_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["created_by", "created_at"]
        return ["version", "fields", "effective_from", "notes", "created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            if "retires_at" in form.changed_data:
                schema_version_retire(version=obj, retires_at=obj.retires_at, by=request.user)  # the form checked
            return
        registered = schema_version_register(  # the form ran the same checks
            version=obj.version,
            fields=obj.fields,
            effective_from=obj.effective_from,
            retires_at=obj.retires_at,
            notes=obj.notes,
            by=request.user,
        )
        obj.pk = registered.pk

    def has_delete_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    """On a governed queue the members are shown, not edited: who is in, their weights and availability change
    on the queue's settings screen, where the change is staged with its evidence (routing/changes/queues.py)."""

    model = QueueMembership
    extra = 0
    fields = ["user", "is_available", "weight", "rotation_pass"]
    readonly_fields = ["rotation_pass"]
    autocomplete_fields = ["user"]

    # `obj` is the queue. Django also ignores posted rows of an inline without these permissions.
    def has_add_permission(self, request, obj=None):
        return not _governed(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not _governed(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _governed(obj) and super().has_delete_permission(request, obj)


def _governed(queue) -> bool:
    """Whether the stored queue is governed (a history page passes an old version: its own flag may differ)."""
    if queue is None or queue.pk is None:
        return False
    return Queue.objects.filter(pk=queue.pk, governed=True).exists()


class QueueAdminForm(PlainNameForm):
    governance_reason = forms.CharField(
        required=False,
        max_length=500,
        label="Why turn governance off",
        help_text="Required to turn governance off; kept in the audit trail and the queue's history.",
    )

    def clean(self):
        cleaned = super().clean()
        turning_off = self.instance.pk and self.initial.get("governed") and not cleaned.get("governed", True)
        if turning_off and not (cleaned.get("governance_reason") or "").strip():
            self.add_error("governance_reason", "Say why governance is turned off: routing changes then apply at once.")
        return cleaned


@admin.register(Queue)
class QueueAdmin(SimpleHistoryAdmin):
    """On a governed queue the routing settings (changes.queues.ROUTING_FIELDS) and members are read-only here:
    they change on the console's settings screen, staged with evidence. Only superusers set or clear
    `governed`; turning it off needs a reason, and either way the change is audited with the save."""

    form = QueueAdminForm
    list_display = [
        "name",
        "strategy",
        "ack_sla_minutes",
        "resolve_sla_minutes",
        "max_open_per_member",
        "overflow_queue",
        "owner",
        "escalation_contact",
        "governed",
    ]
    search_fields = ["name"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly.append("governed")
        if _governed(obj):
            readonly += ROUTING_FIELDS
        return readonly

    def get_fieldsets(self, request, obj=None):
        fields = [f for f in self.get_fields(request, obj) if f != "governance_reason"]
        if request.user.is_superuser and obj is not None:
            fields.append("governance_reason")
        if not _governed(obj):
            return [(None, {"fields": fields})]
        settings_url = reverse("console:queue-settings", args=[obj.pk])
        return [
            (None, {"fields": [f for f in fields if f not in ROUTING_FIELDS]}),
            (
                "Routing (governed)",
                {
                    "fields": [f for f in fields if f in ROUTING_FIELDS],
                    "description": format_html(
                        "This queue is governed: its routing settings and members are changed on "
                        '<a href="{}">its settings screen</a>, where a change is staged with evidence on its '
                        "recent leads and applies once confirmed. Only a superuser turns governance off, with a "
                        "reason, and that is audited.",
                        settings_url,
                    ),
                },
            ),
        ]

    def save_model(self, request, obj, form, change):
        stored = Queue.objects.filter(pk=obj.pk).values_list("governed", flat=True).first() if change else False
        if stored != obj.governed and not request.user.is_superuser:
            raise PermissionDenied("Only a superuser turns a queue's governance on or off.")
        reason = (form.cleaned_data.get("governance_reason") or "").strip()
        if stored != obj.governed:
            obj._change_reason = reason or "Governance turned on in the admin"
        super().save_model(request, obj, form, change)  # the admin's save is one transaction: audited with it
        if stored != obj.governed:
            audit_record(
                action=AuditAction.CONFIG_CHANGED,
                actor=request.user,
                outcome="governance_on" if obj.governed else "governance_off",
                data={
                    "kind": ChangeKind.QUEUE,
                    "object_id": obj.pk,
                    "queue_id": obj.pk,
                    "object": obj.name,
                    "fields": ["governed"],
                    "members": [],
                    "governed": obj.governed,
                    "reason": reason,
                },
            )

    def revert_disabled(self, request, obj=None):
        return _governed(obj) or super().revert_disabled(request, obj)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        """Reverting a governed queue here would skip the staging: the console's restore stages it."""
        queue = Queue.objects.filter(pk=unquote(object_id)).first()
        if request.method == "POST" and _governed(queue):
            self.message_user(
                request,
                format_html(
                    'Not reverted: {} is governed. Restore a version from <a href="{}">its change history</a>, '
                    "where the restore is staged with evidence.",
                    queue,
                    reverse("console:object-changes", args=[ChangeKind.QUEUE, queue.pk]),
                ),
                messages.ERROR,
            )
            return HttpResponseRedirect(request.path)
        return super().history_form_view(request, object_id, version_id, extra_context)


class RuleForm(DraftChecks, forms.ModelForm):
    class Meta:
        model = Rule
        fields = list(Rule.DRAFT_FIELDS)


@admin.register(Rule)
class RuleAdmin(SimpleHistoryAdmin):
    """Edits the draft only. Live versions are immutable; stages move by promotion in the console."""

    form = RuleForm
    formfield_overrides = {models.JSONField: {"form_class": BoundedJSONField}}  # deep JSON: a 400, not a crash
    list_display = ["name", "priority", "stage", "queue", "owner", "production_version", "staging_version"]
    list_filter = ["stage", "queue"]
    search_fields = ["name", "description"]
    readonly_fields = ["stage", "production_version", "staging_version", "created_at", "updated_at"]
    autocomplete_fields = ["owner", "queue"]

    def save_model(self, request, obj, form, change):
        rule_draft_save(rule=obj, by=request.user)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RuleVersion)
class RuleVersionAdmin(ReadOnlyAdmin):
    list_display = ["rule", "number", "priority", "queue", "owner", "created_at", "forced"]
    list_filter = ["forced"]
    search_fields = ["name"]


@admin.register(RulePromotion)
class RulePromotionAdmin(ReadOnlyAdmin):
    list_display = ["rule", "version", "kind", "by", "at"]
    list_filter = ["kind"]


@admin.register(RuleSignOff)
class RuleSignOffAdmin(ReadOnlyAdmin):
    list_display = ["rule", "week", "by", "at", "production_version"]


@admin.register(Lead)
class LeadAdmin(SimpleHistoryAdmin):
    list_display = ["id", "lead_id", "origin", "status", "queue", "assignee", "received_at", "assigned_at"]
    list_filter = ["status", "origin", "queue"]
    search_fields = ["lead_id", "email", "company"]
    list_select_related = ["origin", "queue", "assignee"]
    readonly_fields = [f.name for f in Lead._meta.fields]
    date_hierarchy = "received_at"

    def has_add_permission(self, request):
        return False  # leads arrive through the intake API

    actions = ["erase_person"]

    def has_erase_permission(self, request):
        return request.user.is_superuser  # an erasure request is honoured by an administrator

    @admin.action(description="Erase this person's personal data", permissions=["erase"])
    def erase_person(self, request, queryset):
        """Per person (the selected leads' emails, with their phones): a page saying what would change, then the
        erasure (routing.erasure.person_erase) once confirmed."""
        people, skipped = {}, []
        for lead in queryset.order_by("pk"):
            if lead.email and "@" in lead.email:
                people.setdefault(lead.email, set()).update([lead.phone] if lead.phone else [])
            else:
                skipped.append(lead.pk)
        # The email finds all of a person's leads; a phone only adds leads that carry it without the email.
        plans = [{"email": email, "phone": min(phones) if phones else None} for email, phones in people.items()]
        confirmed = request.POST.get("confirm") == "yes"
        for plan in plans:
            plan["erasure"] = person_erase(
                email=plan["email"], phone=plan["phone"], by=request.user, dry_run=not confirmed
            )
        if confirmed:
            erased = sum(plan["erasure"].total for plan in plans)
            self.message_user(request, f"Erased {len(plans)} people's personal data ({erased} rows changed).")
            return None
        return render(
            request,
            "admin/routing/lead/erase_confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Erase personal data?",
                "people": plans,
                "skipped": skipped,
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            },
        )


class OutboundUrlChecks:
    """Refuse at once a URL that every send would refuse (loopback, private, metadata …); the check runs
    again at each send, since what a name resolves to can change after it is saved."""

    def clean_url(self):
        url = self.cleaned_data["url"]
        problem = url_problem(url)
        if problem:
            raise forms.ValidationError(problem)
        return url


class WriteOnlySecret:
    """The secret field sets or replaces the secret and never shows it (finding 7): the page says whether one
    is set; left blank on a change, the stored one is kept."""

    secret_field: str
    secret_required = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields[self.secret_field]
        stored = bool(self.instance.pk and getattr(self.instance, self.secret_field))
        field.required = self.secret_required and not stored
        state = "Set; leave blank to keep it, or type a new one to replace it." if stored else "Not set."
        field.help_text = f"{state} {field.help_text}".strip()

    def clean(self):
        data = super().clean()
        if data.get(f"clear_{self.secret_field}"):
            data[self.secret_field] = ""  # an optional secret is removed only when asked to, never by a blank
        elif not data.get(self.secret_field) and self.instance.pk:
            data[self.secret_field] = getattr(self.instance, self.secret_field)
        return data


class SecretStateAdmin(admin.ModelAdmin):
    """View-only staff see "set" or "not set", never the value (a read-only field would print it)."""

    secret_field: str

    @admin.display(description="Secret")
    def secret_state(self, obj):
        return "set" if obj and getattr(obj, self.secret_field) else "not set"

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            fields = ["secret_state" if name == self.secret_field else name for name in fields]
        return fields

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "secret_state"]


class DeliveryTargetForm(WriteOnlySecret, OutboundUrlChecks, forms.ModelForm):
    """The secret is write-only like the others, but never required: left blank on a new target, or with
    "generate" ticked, a `whsec_` secret is generated and shown once after saving. A replaced secret keeps
    signing next to the new one for a day (routing/integrations/targets.py) unless the overlap is ended."""

    secret_field = "secret"
    events = forms.MultipleChoiceField(choices=EventType.choices, widget=forms.CheckboxSelectMultiple)
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        max_length=200,
        required=False,
        help_text=(
            "Blank on a new target: one is generated. Standard Webhooks takes whsec_<base64>; an older secret in "
            "another form keeps working, and its receiver-side form is whsec_ + base64 of its bytes."
        ),
    )
    generate_secret = forms.BooleanField(
        required=False, label="Generate a new secret", help_text="Shown once after saving."
    )
    end_overlap = forms.BooleanField(
        required=False,
        label="Stop signing with the previous secret now",
        help_text="Once the receiver has the new secret (otherwise it stops by itself a day after the change).",
    )
    url = forms.URLField(assume_scheme="https", max_length=500)

    class Meta:
        model = DeliveryTarget
        fields = [
            "name",
            "url",
            "signature_scheme",
            "secret",
            "generate_secret",
            "end_overlap",
            "events",
            "is_active",
            "max_attempts",
            "timeout_seconds",
            "confirms_by_callback",
            "confirm_within_minutes",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stored_secret = self.instance.secret if self.instance.pk else ""
        self.new_secret = ""  # set by clean when the target gets a new secret
        self.generated = False  # … and when it was generated here (then it is shown once)

    def clean(self):
        typed = (self.cleaned_data.get("secret") or "").strip()
        data = super().clean()  # a blank secret on a change becomes the stored one
        scheme = data.get("signature_scheme")
        if data.get("generate_secret") or (not self.instance.pk and not typed):
            self.new_secret = data["secret"] = secret_generate()
            self.generated = True
        elif typed and typed != self.stored_secret:
            problem = secret_problem(typed) if scheme != SignatureScheme.LEGACY else None
            if problem:
                self.add_error("secret", problem)
            self.new_secret = data["secret"] = typed
        return data


@admin.register(DeliveryTarget)
class DeliveryTargetAdmin(SecretStateAdmin):
    form = DeliveryTargetForm
    secret_field = "secret"
    list_display = ["name", "url", "signature_scheme", "is_active", "max_attempts", "timeout_seconds"]

    @admin.display(description="Previous secret")
    def previous_secret_state(self, obj):
        if obj and obj.previous_secret and obj.previous_secret_until and obj.previous_secret_until > timezone.now():
            return (
                f"still signs (Standard Webhooks) until {timezone.localtime(obj.previous_secret_until):%Y-%m-%d %H:%M}"
            )
        return "none"

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "previous_secret_state"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            fields = [f for f in fields if f not in ("generate_secret", "end_overlap")]  # actions, not values
        return fields

    def save_model(self, request, obj, form, change):
        if change and form.new_secret:
            target_secret_replaced(target=obj, previous=form.stored_secret, at=timezone.now())
        elif form.cleaned_data.get("end_overlap"):
            target_overlap_end(target=obj)
        obj.shown_once = form.new_secret if form.generated else ""
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        return self._secret_shown_once(request, obj) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        return self._secret_shown_once(request, obj) or super().response_change(request, obj)

    def _secret_shown_once(self, request, obj):
        """A generated secret is shown on this one page (not stored in a message cookie), never again."""
        if not getattr(obj, "shown_once", ""):
            return None
        page = render(
            request,
            "admin/routing/deliverytarget/secret_once.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "target": obj,
                "secret": obj.shown_once,
                "standard": obj.signature_scheme != SignatureScheme.LEGACY,
                "title": f"Signing secret of {obj.name}",
            },
        )
        add_never_cache_headers(page)
        return page


class ReceiptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "at", "status_code", "latency_ms", "error", "retry_after_seconds", "replay"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "target", "lead", "status", "attempts", "created_at", "delivered_at"]
    list_filter = ["status", "target", "event_type"]
    inlines = [ReceiptInline]


class EnrichmentProviderForm(WriteOnlySecret, OutboundUrlChecks, forms.ModelForm):
    secret_field = "auth_value"
    auth_value = forms.CharField(widget=forms.PasswordInput(render_value=False), max_length=500, required=False)
    clear_auth_value = forms.BooleanField(required=False, label="Remove the stored credential")
    url = forms.URLField(assume_scheme="https", max_length=500)

    class Meta:
        model = EnrichmentProvider
        fields = ["name", "url", "auth_header", "auth_value", "timeout_seconds", "max_attempts", "is_active"]


@admin.register(EnrichmentProvider)
class EnrichmentProviderAdmin(SecretStateAdmin):
    form = EnrichmentProviderForm
    secret_field = "auth_value"
    list_display = ["name", "url", "is_active", "timeout_seconds", "max_attempts", "down_until", "failures_in_a_row"]


@admin.register(PersonalToken)
class PersonalTokenAdmin(admin.ModelAdmin):
    """People's API tokens: only a prefix is known (the hash is never shown); an admin revokes them."""

    list_display = ["token_prefix", "user", "name", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "token_prefix"]
    fields = ["user", "name", "token_prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "revoked_by"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # made by their owner on the console's API tokens page (or `manage.py create_api_token`)

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = sum(personal_token_revoke(token=token, by=request.user) for token in queryset)
        self.message_user(request, f"Revoked {revoked} token(s).")


@admin.register(WorkingHours)
class WorkingHoursAdmin(SimpleHistoryAdmin):
    """People set their own on the console's My hours page (checked, audited); this is for support."""

    list_display = ["user", "timezone", "ical_url", "ical_read_at", "ical_problem"]
    search_fields = ["user__username"]
    readonly_fields = ["ical_read_at", "ical_problem"]


@admin.register(TimeOff)
class TimeOffAdmin(SimpleHistoryAdmin):
    list_display = ["user", "start", "end", "note", "source"]
    list_filter = ["source"]
    search_fields = ["user__username", "note"]
    date_hierarchy = "start"
