from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path
from django.views.defaults import page_not_found
from django.views.defaults import server_error as html_server_error
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import health
from config.signin import PasswordChangeView
from exceptions.urls import urlpatterns as exception_screens
from routing.accounts.urls import console_urlpatterns as account_screens
from routing.api.token_views import console_urlpatterns as token_screens
from routing.availability.urls import console_urlpatterns as people_screens
from routing.capture.urls import console_urlpatterns as capture_screens
from routing.changes.urls import urlpatterns as change_screens
from routing.dashboard.urls import urlpatterns as dashboard_screens
from routing.experiments.urls import urlpatterns as experiment_screens
from routing.governance.urls import urlpatterns as rule_screens
from routing.integrations.urls import urlpatterns as integration_screens
from routing.reports.urls import urlpatterns as report_screens
from routing.reports.views.metrics import metrics

# The console: one URL namespace, each area contributing its screens.
console_urlpatterns = [
    *exception_screens,
    *integration_screens,
    *report_screens,
    *rule_screens,
    *dashboard_screens,
    *account_screens,
    *token_screens,
    *people_screens,
    *capture_screens,
    *change_screens,
    *experiment_screens,
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:overview", permanent=False)),
    # Sign-in, sign-out and changing one's own password (signed in, with the old one); no self-service
    # password reset (docs/security.md, finding 9): admins set passwords (admin, `manage.py changepassword`).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("console/", include((console_urlpatterns, "console"))),
    path("admin/", admin.site.urls),
    path("api/v1/", include("routing.api.urls")),
    path("api/v1/", include("exceptions.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    # The split view serves its start-up script as a file, so the docs page needs no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", permission_classes=[]), name="api-docs"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]


def not_found(request, exception):
    """A URL no route matches: JSON under /api/ (the schema documents {"detail": …}), the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


handler404 = not_found


def server_error(request):
    """An unhandled error: JSON under /api/ (a client parses the body whatever the status), HTML elsewhere.
    The body says nothing about the error itself; the log line has the traceback."""
    if request.path.startswith("/api/"):
        detail = "Server error: the request was not completed; try again, or report it if it persists."
        return JsonResponse({"detail": detail}, status=500)
    return html_server_error(request)


handler500 = server_error
