"""Real HTTP servers on loopback standing in for PagerDuty's Events API v2 and Slack's incoming webhooks
(outside the product, so faked as servers, never as mocks of our code). Each implements the documented request
and response shapes: PagerDuty checks the event's required fields and answers 202 with the dedup key, or 400
with its errors; Slack answers `ok` in plain text, or `invalid_payload` / `no_text`. A script of answers
(429 with Retry-After, 5xx, Slack's 404 `no_service`) comes first, then the documented behaviour."""

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "pagerduty-webhook-secret"  # AlertChannelFactory's webhook secret
PAGERDUTY_SEVERITIES = {"critical", "error", "warning", "info"}
PAGERDUTY_ACTIONS = {"trigger", "acknowledge", "resolve"}


@dataclass
class Scripted:
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Request:
    path: str
    headers: dict
    body: bytes
    answered: int

    def json(self):
        return json.loads(self.body)


class FakeTool:
    path = "/"

    def __init__(self):
        self.script: list[Scripted] = []
        self.received: list[Request] = []
        self._lock = threading.Lock()
        tool = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with tool._lock:
                    answer = tool.script.pop(0) if tool.script else tool.answer(self.path, body)
                    tool.received.append(Request(self.path, dict(self.headers.items()), body, answer.status))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, str(value))
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, body: bytes) -> Scripted:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[Request]:
        with self._lock:
            return [r for r in self.received if 200 <= r.answered < 300]


class FakePagerDuty(FakeTool):
    """Events API v2 (POST /v2/enqueue). Keeps each alert's state by dedup key, as PagerDuty does, so a test
    can tell the order in which trigger, acknowledge and resolve arrived."""

    path = "/v2/enqueue"

    def __init__(self):
        super().__init__()
        self.alerts: dict[str, list[str]] = {}  # dedup key -> actions accepted, in order

    def answer(self, path: str, body: bytes) -> Scripted:
        if path != self.path:
            return Scripted(404, b'{"status":"not found"}')
        try:
            event = json.loads(body)
        except ValueError:
            return self._invalid(["Event object is not valid JSON"])
        errors = []
        if not isinstance(event.get("routing_key"), str) or len(event["routing_key"]) != 32:
            errors.append("'routing_key' is invalid (it is 32 characters)")
        action = event.get("event_action")
        if action not in PAGERDUTY_ACTIONS:
            errors.append("'event_action' is missing or invalid")
        dedup_key = event.get("dedup_key")
        if action in ("acknowledge", "resolve") and not dedup_key:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
            errors.append("'dedup_key' is invalid")
        if action == "trigger":
            payload = event.get("payload") or {}
            if not payload.get("summary") or len(payload["summary"]) > 1024:
                errors.append("'payload.summary' is missing or too long")
            if not payload.get("source"):
                errors.append("'payload.source' is missing")
            if payload.get("severity") not in PAGERDUTY_SEVERITIES:
                errors.append("'payload.severity' is missing or invalid")
            for link in event.get("links", []):
                if not link.get("href"):
                    errors.append("'links[].href' is missing")
        if errors:
            return self._invalid(errors)
        self.alerts.setdefault(dedup_key, []).append(action)
        answer = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
        return Scripted(202, json.dumps(answer).encode())

    @staticmethod
    def _invalid(errors: list[str]) -> Scripted:
        answer = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        return Scripted(400, json.dumps(answer).encode())


def rate_limited(retry_after: int) -> Scripted:
    return Scripted(429, b"", {"Retry-After": retry_after}, "text/plain")


class FakeSlack(FakeTool):
    """An incoming webhook (POST /services/T…/B…/…): `ok` in plain text, or the documented errors."""

    path = "/services/T000/B000/XXXX"

    def answer(self, path: str, body: bytes) -> Scripted:
        if path != self.path:
            return slack_error(404, "no_service")
        try:
            message = json.loads(body)
        except ValueError:
            return slack_error(400, "invalid_payload")
        if not message.get("text") and not message.get("blocks"):
            return slack_error(400, "no_text")
        return Scripted(200, b"ok", content_type="text/plain")


def slack_error(status: int, code: str, **headers) -> Scripted:
    return Scripted(status, code.encode(), headers, "text/plain")


# --- PagerDuty calling back (webhooks v3) ---


def pagerduty_webhook_body(event_type: str, incident_key: str, *, agent="Priya Pager") -> bytes:
    return json.dumps(
        {
            "event": {
                "id": "01DEN0ZUZ1B3MJU4RC0R3E8XB4",
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": "2026-12-04T12:00:00.000Z",
                "agent": {"id": "PUSER01", "summary": agent, "type": "user_reference"},
                "data": {
                    "id": "Q2WBX3G3DDDDDD",
                    "type": "incident",
                    "number": 1042,
                    "status": event_type.split(".")[1],
                    "incident_key": incident_key,
                    "title": "Exception",
                },
            }
        }
    ).encode()


def signed(body: bytes, secret: str = SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(client, body: bytes, signature: str):
    return client.post(
        "/api/v1/integrations/pagerduty/", body, content_type="application/json", HTTP_X_PAGERDUTY_SIGNATURE=signature
    )
