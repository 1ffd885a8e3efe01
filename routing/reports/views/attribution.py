"""Attribution reconciliation in the console: upload a CRM export, read the report, list past reports.

Any console user (ops, rule owners, admins) may upload; ops staff and admins may also run the latest upload's
export again (Run now: AttributionRunView). A bad file is a form error (400), never a 500. An
upload over HANDOFF["ATTRIBUTION_MAX_BYTES"] is dropped while it streams in (UploadSizeCap), so a huge file
is neither held in memory nor spooled to disk; for that the upload handlers are set before anything reads
the body, which is why the view is CSRF-exempt at dispatch and checks the token itself, after."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from exceptions.permissions import ConsoleAccessMixin
from routing.reports.attribution import (
    AttributionFileError,
    attribution_export_kept,
    attribution_period,
    attribution_reconcile,
    attribution_report_csv,
    attribution_reports,
    attribution_run_again,
    size_limit_message,
)
from routing.reports.models import ReconciliationReport, ReportKind


class UploadSizeCap(FileUploadHandler):
    """Passes chunks on to the next handlers until a file passes the limit, then skips the rest of it."""

    def __init__(self, request, max_bytes: int):
        super().__init__(request)
        self.max_bytes = max_bytes
        self.received = 0
        self.too_large = False

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.too_large = True
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size):
        return None


class AttributionUploadForm(forms.Form):
    file = forms.FileField(label="CRM export (CSV)")
    since = forms.DateField(required=False, label="From (day)", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To (day, inclusive)", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, too_large: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.too_large = too_large
        if too_large:
            self.fields["file"].required = False  # it was dropped while streaming in; clean_file says why

    def clean_file(self):
        if self.too_large:
            raise ValidationError(size_limit_message())
        return self.cleaned_data["file"]

    def clean(self):
        data = super().clean()
        try:
            data["period"] = attribution_period(since=data.get("since"), until=data.get("until"))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return data


@method_decorator(csrf_exempt, name="dispatch")  # the token is checked in post(), once the upload is capped
class AttributionView(ConsoleAccessMixin, View):
    def get(self, request):
        return self.page(request, AttributionUploadForm())

    def post(self, request):
        cap = UploadSizeCap(request, settings.HANDOFF["ATTRIBUTION_MAX_BYTES"])
        request.upload_handlers.insert(0, cap)
        return self.upload(request, cap)

    @method_decorator(csrf_protect)
    def upload(self, request, cap):
        form = AttributionUploadForm(request.POST, request.FILES, too_large=cap.too_large)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            since, until = form.cleaned_data["period"]
            try:
                report = attribution_reconcile(file=upload, name=upload.name, by=request.user, since=since, until=until)
            except AttributionFileError as exc:
                form.add_error("file", exc.message)
            else:
                totals = report.data["totals"]
                summary = (
                    f"Reconciled {totals['crm_rows']} CRM rows with {totals['our_leads']} leads: "
                    f"variance {report.variance:.1%}"
                )
                if report.flagged:
                    messages.warning(request, f"{summary}, above the {report.data['threshold']:.1%} threshold.")
                else:
                    messages.success(request, f"{summary}.")
                return HttpResponseRedirect(reverse("console:attribution-report", args=[report.pk]))
        return self.page(request, form, status=400)

    def page(self, request, form, status=200):
        page = Paginator(attribution_reports(), 25).get_page(request.GET.get("page"))
        for report in page:
            report.variance_percent = f"{report.variance:.1%}"
        may_run = may_run_now(request.user)
        return render(
            request,
            "console/attribution.html",
            {
                "form": form,
                "page": page,
                "max_bytes": settings.HANDOFF["ATTRIBUTION_MAX_BYTES"],
                "may_run": may_run,
                "kept": attribution_export_kept() if may_run else None,
            },
            status=status,
        )


def may_run_now(user) -> bool:
    """Ops staff and admins (superusers are in every console group) run reports now; rule owners do not."""
    return "ops" in getattr(user, "console_groups", ())


class AttributionRunView(ConsoleAccessMixin, View):
    def post(self, request):
        """Run now: the latest upload's CRM export reconciled again (same period) against our assignments as
        they are now; a second run the same UTC day replaces that day's report."""
        if not may_run_now(request.user):
            raise PermissionDenied("Only ops staff and admins run the attribution report now.")
        try:
            run = attribution_run_again(by=request.user)
        except AttributionFileError as exc:
            messages.error(request, f"Not run: {exc.message}")
            return HttpResponseRedirect(reverse("console:attribution"))
        report, upload = run.report, run.upload
        what = (
            f"Attribution run again now on {upload.source_name} (report #{upload.pk}, leads received "
            f"{report.period_start:%Y-%m-%d %H:%M} – {report.period_end:%Y-%m-%d %H:%M}): "
            f"variance {report.variance:.1%}"
        )
        what += f", above the {report.data['threshold']:.1%} threshold." if report.flagged else "."
        if run.replaced:
            what += f" It replaces today's earlier run (report #{report.pk} keeps its number)."
        if report.flagged:
            messages.warning(request, what)
        else:
            messages.success(request, what)
        return HttpResponseRedirect(reverse("console:attribution-report", args=[report.pk]))


class AttributionReportView(ConsoleAccessMixin, View):
    def get(self, request, pk):
        report = get_object_or_404(
            ReconciliationReport.objects.select_related("created_by"), pk=pk, kind=ReportKind.ATTRIBUTION
        )
        if request.GET.get("format") == "csv":
            response = HttpResponse(content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="attribution-{report.pk}.csv"'
            attribution_report_csv(report, response)
            return response
        data = report.data
        return render(
            request,
            "console/attribution_report.html",
            {
                "report": report,
                "totals": data["totals"],
                "amounts": data.get("amounts"),
                "file": data.get("file", {}),
                "variance": f"{report.variance:.1%}",
                "threshold": f"{data['threshold']:.1%}",
                "truncated": data.get("truncated", []),
                "misrouted": data["misrouted"],
                "missing_in_crm": data["missing_in_crm"],
                "unknown_to_us": data["unknown_to_us"],
                "outside_period": data.get("outside_period", []),
                "run_again_of": data.get("run_again_of"),
            },
        )
