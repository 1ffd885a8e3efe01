"""Accounts URLs as plain lists: the API (included under /api/v1/ by routing/api/urls.py) and the console's
screens (inside the `console` namespace)."""

from django.urls import path

from routing.accounts import api, views

api_urlpatterns = [
    path("accounts/", api.AccountListView.as_view(), name="account-list"),
    path("accounts/match/", api.AccountMatchView.as_view(), name="account-match"),
    # path: a CRM id may hold a slash (a /-separated hierarchy); "match/" above is matched first.
    path("accounts/<path:account_id>/", api.AccountDetailView.as_view(), name="account-detail"),
]

console_urlpatterns = [
    path("accounts/", views.AccountListView.as_view(), name="accounts"),
    path("accounts/<int:pk>/", views.AccountView.as_view(), name="account"),
]
