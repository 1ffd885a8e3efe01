"""Console screens for accounts: the list with search, and one account with its owner, its leads and how each
was routed."""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views import View

from exceptions.permissions import ConsoleAccessMixin
from routing.accounts.models import Account
from routing.accounts.selectors import account_leads, account_list

PAGE_SIZE = 50


class AccountListView(ConsoleAccessMixin, View):
    def get(self, request):
        search = request.GET.get("q", "")
        page = Paginator(account_list(search=search), PAGE_SIZE).get_page(request.GET.get("page"))
        return render(request, "console/accounts/list.html", {"page": page, "search": search})


class AccountView(ConsoleAccessMixin, View):
    def get(self, request, pk):
        account = get_object_or_404(Account.objects.select_related("owner"), pk=pk)
        return render(request, "console/accounts/detail.html", {"account": account, "matches": account_leads(account)})
