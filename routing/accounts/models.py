"""Accounts (the CRM's companies), each lead's account match, and each lead's identity keys.

Models of the `routing` app (registered from routing/models.py), in their own module."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from routing.accounts.matching import MatchMethod


class Account(models.Model):
    """A company from the CRM: `account_id` is the CRM's id, the key of every upsert."""

    account_id = models.CharField(max_length=128, unique=True, help_text="The CRM's id of the account.")
    name = models.CharField(max_length=300)
    # Matchable domains, normalised (lower case, punycode, no www.); one AccountDomain row each for lookups.
    domains = models.JSONField(default=list, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    country = models.CharField(max_length=2, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="owned_accounts"
    )
    territory = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True, help_text="Further CRM columns, read as account.<key>.")
    # Derived by the services on every write (routing/accounts/normalize.py); what the matcher looks up.
    name_key = models.CharField(max_length=300, blank=True, editable=False)
    phone_key = models.CharField(max_length=8, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            # The matcher's candidate query (selectors.match_candidates): exact name and phone (close names:
            # AccountNameKey). Partial: accounts without the key are never looked up by it.
            models.Index(fields=["name_key"], condition=~Q(name_key=""), name="account_name_key_idx"),
            models.Index(fields=["phone_key"], condition=~Q(phone_key=""), name="account_phone_key_idx"),
            models.Index(fields=["updated_at"], name="account_updated_at_idx"),  # accounts_state's newest write
        ]

    def __str__(self):
        return f"{self.name} ({self.account_id})"


def accounts_state() -> str:
    """A stamp that changes whenever an account is written or deleted (how many, the newest write): what a
    rule's stored test results depend on when its condition reads account fields."""
    state = Account.objects.aggregate(n=models.Count("id"), newest=models.Max("updated_at"))
    return f"{state['n']}@{state['newest'].isoformat() if state['newest'] else '-'}"


class AccountDomain(models.Model):
    """One matchable domain of an account, indexed for the email-domain lookup."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="domain_rows")
    domain = models.CharField(max_length=253)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "domain"], name="account_domain_unique")]
        indexes = [models.Index(fields=["domain"], name="account_domain_idx")]

    def __str__(self):
        return self.domain


class AccountNameKey(models.Model):
    """One key a close company name is looked up by, with the account's country (a close name needs it; the
    phone case is found by the phone lookup): the first word, the first word less one letter (two from 9
    letters), and the name without spaces (normalize.close_name_keys). A lead's name finds an account when
    one of its keys is one of the account's: every name close enough to match shares one."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="name_keys")
    key = models.CharField(max_length=120)
    country = models.CharField(max_length=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "key"], name="account_name_key_unique")]
        indexes = [models.Index(fields=["key", "country"], name="account_close_name_idx")]

    def __str__(self):
        return self.key


class AccountMatch(models.Model):
    """The account a lead was matched to before routing (or none, or an ambiguous tie), and why.

    `account_view` is the account as the rules saw it (`account.*` fields), kept so explanations and replays
    read what routing read even after the account changes or is deleted."""

    lead = models.OneToOneField("routing.Lead", on_delete=models.CASCADE, related_name="account_match")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="matches")
    method = models.CharField(max_length=16, choices=MatchMethod.choices)
    confidence = models.FloatField(default=0.0)
    why = models.TextField(blank=True)
    candidates = models.JSONField(default=list, blank=True)
    account_view = models.JSONField(null=True, blank=True)
    matched_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["account", "matched_at"], name="account_match_account_idx")]

    def __str__(self):
        return f"{self.lead_id}: {self.method}"


class LeadIdentity(models.Model):
    """The keys that say which person a lead is: its normalised email, and its `lead_id` when its source
    shares ids with other sources. Leads with an equal key are the same person (routing/accounts/identity.py)."""

    lead = models.OneToOneField("routing.Lead", on_delete=models.CASCADE, related_name="identity")
    email_key = models.CharField(max_length=254, blank=True)
    shared_id = models.CharField(max_length=128, blank=True)
    # Whether an earlier lead of the same person existed when this one was routed (dashboard: per origin).
    known_person = models.BooleanField(default=False)
    linked_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "lead identities"
        indexes = [
            # A person's newest leads: a few entries at the end of their key's range (identity._newest_leads_of).
            models.Index(fields=["email_key", "lead"], condition=~Q(email_key=""), name="identity_email_lead_idx"),
            models.Index(fields=["shared_id", "lead"], condition=~Q(shared_id=""), name="identity_shared_lead_idx"),
        ]

    def __str__(self):
        return f"{self.lead_id}: {self.email_key or self.shared_id}"
