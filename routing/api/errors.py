"""One DRF exception handler for the whole API: the services raise domain errors, and this turns each into
the documented body and status, so no view repeats a try/except. Anything else is DRF's own handling."""

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from exceptions.api.serializers import ExceptionItemSerializer
from exceptions.selectors import exception_api_queryset
from exceptions.services import ExceptionConflict, InvalidAction
from exceptions.triage import InvalidLeadData
from routing.governance.replay import ReplayBusy, ReplayError
from routing.governance.services import GovernanceError, PromotionBlocked
from routing.intake import SampleLeadError


def api_exception_handler(exc, context):
    answer = domain_error_response(exc)
    if answer is None:
        return drf_exception_handler(exc, context)
    set_rollback()
    return answer


def domain_error_response(exc: Exception) -> Response | None:
    match exc:
        case ExceptionConflict():  # someone else acted first: say who, and show the item as it is now
            item = ExceptionItemSerializer(exception_api_queryset().get(pk=exc.item.pk)).data
            return Response({"detail": exc.message, "item": item}, status=409)
        case InvalidLeadData() | SampleLeadError():  # field by field, like intake's errors
            return Response({"lead": exc.errors}, status=400)
        case PromotionBlocked():
            body = {
                "detail": "Promotion blocked: " + " ".join(gate.message for gate in exc.failures),
                "failures": [gate.as_dict() for gate in exc.failures],
                "gates": [gate.as_dict() for gate in exc.gates],
            }
            return Response(body, status=400)
        case ReplayBusy():
            return Response({"detail": str(exc)}, status=429, headers={"Retry-After": "30"})
        case InvalidAction() | GovernanceError() | ReplayError():
            return Response({"detail": str(exc)}, status=400)
    return None
