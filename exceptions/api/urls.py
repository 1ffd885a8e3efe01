from django.urls import path

from exceptions.api import views

urlpatterns = [
    path("exceptions/", views.ExceptionListView.as_view(), name="exception-list"),
    path("exceptions/bulk/", views.BulkView.as_view(), name="exception-bulk"),
    path("exceptions/<int:pk>/", views.ExceptionDetailView.as_view(), name="exception-detail"),
    path("exceptions/<int:pk>/acknowledge/", views.AcknowledgeView.as_view(), name="exception-acknowledge"),
    path("exceptions/<int:pk>/resolve/", views.ResolveView.as_view(), name="exception-resolve"),
    path("exceptions/<int:pk>/reroute/", views.RerouteView.as_view(), name="exception-reroute"),
]
