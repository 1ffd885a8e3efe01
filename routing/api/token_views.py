"""The console's API tokens page: a person makes tokens for the console API (each shown once), sees when
each expires and was last used, and revokes them."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils import timezone
from django.views import View

from exceptions.permissions import ConsoleAccessMixin
from routing.models import PersonalToken
from routing.tokens import personal_token_create, personal_token_revoke, personal_tokens_of


class NewTokenForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What it is for, e.g. 'reporting script'.")
    days = forms.IntegerField(min_value=1, max_value=settings.HANDOFF["API_TOKEN_MAX_DAYS"], label="Valid for (days)")


class PersonalTokensView(ConsoleAccessMixin, View):
    def get(self, request):
        return self._page(request, NewTokenForm(initial={"days": settings.HANDOFF["API_TOKEN_DAYS"]}))

    def post(self, request):
        if "revoke" in request.POST:
            token_id = request.POST["revoke"]
            if not (token_id.isascii() and token_id.isdigit()):
                return self._page(request, NewTokenForm(), status=400)
            token = get_object_or_404(PersonalToken, pk=int(token_id), user=request.user)  # only one's own
            if personal_token_revoke(token=token, by=request.user):
                messages.success(request, f"Token {token.token_prefix}… revoked; it no longer authenticates.")
            return HttpResponseRedirect(reverse("console:api-tokens"))
        form = NewTokenForm(request.POST)
        if not form.is_valid():
            return self._page(request, form, status=400)
        token, clear = personal_token_create(user=request.user, **form.cleaned_data)
        # Shown in this answer only: not in a message or the session, and never stored.
        return self._page(request, NewTokenForm(initial={"days": form.cleaned_data["days"]}), new=(token, clear))

    def _page(self, request, form, *, new=None, status=200):
        now = timezone.now()
        tokens = [(token, token.state(now)) for token in personal_tokens_of(user=request.user)]
        context = {"form": form, "tokens": tokens, "new": new}
        response = render(request, "console/api_tokens.html", context, status=status)
        response["Cache-Control"] = "no-store"  # the page may hold a token in clear
        return response


console_urlpatterns = [path("api-tokens/", PersonalTokensView.as_view(), name="api-tokens")]
