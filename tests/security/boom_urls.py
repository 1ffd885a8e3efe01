"""The project's URLs plus one API view that fails, to see what an unhandled error answers."""

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.urls import handler404, handler500, urlpatterns  # noqa: F401 - the handlers are this URLconf's


class Boom(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("a bug")


urlpatterns = [path("api/v1/boom/", Boom.as_view()), path("console/boom/", lambda request: 1 / 0), *urlpatterns]
