from django.conf import settings


def console(request):
    """Settings the console's pages show or act on (no queries)."""
    return {"reminder_minutes": settings.HANDOFF["REMINDER_MINUTES"]}
