"""README's production recipe, followed as written: production settings (DJANGO_DEBUG=0) served by gunicorn as
shipped, behind an imitation of a TLS-terminating proxy that sets and strips the headers README names; the
first admin made with `createsuperuser`, signing in (CSRF and all) and opening the console. Then the
plain-HTTP recipe for a private network, and what DJANGO_CSRF_TRUSTED_ORIGINS is for."""

import http.client
import http.server
import re
import subprocess
import sys
import threading
from http.cookies import SimpleCookie

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.conftest import ROOT, service_env, wait_until
from tests.faults.helpers import Service, free_port
from tests.test_readme_settings import readme_section

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC_HOST = "handoff.example.test"
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "k3y-for-the-production-recipe-test-only-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "HANDOFF_SECRETS_KEY": "cHJvZHVjdGlvbi1yZWNpcGUtdGVzdC1vbmx5LWtleTA=",
    "DJANGO_ALLOWED_HOSTS": PUBLIC_HOST,
}
# README, Behind a reverse proxy: one proxy, the address people type.
BEHIND_TLS_PROXY = {
    **PRODUCTION,
    "HANDOFF_PROXY_COUNT": "1",
    "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{PUBLIC_HOST}",
}
# README, Plain HTTP on a private network.
PLAIN_HTTP = {**PRODUCTION, "DJANGO_ALLOWED_HOSTS": "handoff.internal", "HANDOFF_PLAIN_HTTP": "1"}


class ImitationProxy(http.server.ThreadingHTTPServer):
    """What README asks of the TLS-terminating proxy, minus the TLS: it forwards each request to gunicorn with
    X-Forwarded-Proto set to https (replacing the client's), the client's address appended to X-Forwarded-For,
    Forwarded and X-Forwarded-Host dropped, and Host passed through (or replaced by `host`, as nginx does
    without `proxy_set_header Host`)."""

    daemon_threads = True

    def __init__(self, upstream: int, *, host: str | None = None):
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream, self.host = upstream, host

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Forward(http.server.BaseHTTPRequestHandler):
    def forward(self):
        proxy: ImitationProxy = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"forwarded", "x-forwarded-host"}}
        headers = {k: v for k, v in headers.items() if k.lower() not in {"x-forwarded-proto", "connection"}}
        headers["X-Forwarded-Proto"] = "https"
        earlier = self.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{earlier}, {self.client_address[0]}" if earlier else self.client_address[0]
        if proxy.host:
            headers["Host"] = proxy.host
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=30)
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        content = answer.read()
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in {"connection", "transfer-encoding", "content-length"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(content)
        upstream.close()

    do_GET = do_POST = do_HEAD = forward

    def log_message(self, *args):
        pass


@pytest.fixture
def servers(tmp_path):
    """Starts gunicorn as README runs it (`gunicorn -c config/gunicorn.py config.wsgi`) with the given
    environment, after `collectstatic`; stops them all at the end."""
    started: list[Service] = []
    static = tmp_path / "static"

    def start(env: dict) -> int:
        env = production_env(**env, DJANGO_STATIC_ROOT=str(static))
        if not static.exists():
            run(["collectstatic", "--noinput"], env)
        port = free_port()
        command = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
        service = Service("gunicorn", [*command, "-b", f"127.0.0.1:{port}"], env=env, log=tmp_path / f"{port}.log")
        started.append(service.start())

        def up() -> bool:
            assert service.running(), service.tail()
            host = env["DJANGO_ALLOWED_HOSTS"].split(",")[0]  # any other Host is refused (400)
            try:  # /healthz answers plain HTTP even when everything else redirects
                return (
                    httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"Host": host}, timeout=1).status_code == 200
                )
            except httpx.TransportError:
                return False

        wait_until(up, timeout=30, what="gunicorn to start")
        return port

    yield start
    for service in started:
        service.stop()
        print(service.tail())


def production_env(**env) -> dict:
    """The test database and broker, and nothing else of the test settings' environment (they turn the HTTPS
    redirect off, for one): only the variables given."""
    inherited = service_env(**env)
    return {k: v for k, v in inherited.items() if k in env or not k.startswith(("DJANGO_", "HANDOFF_"))}


def run(arguments: list[str], env: dict) -> str:
    """`.venv/bin/python manage.py …` with the servers' environment, as README says to run it."""
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def first_admin(env: dict) -> None:
    """README: the first admin, `createsuperuser` (here without prompts: its password from the environment)."""
    run(
        ["createsuperuser", "--noinput", "--username", "root", "--email", "root@example.test"],
        {**env, "DJANGO_SUPERUSER_PASSWORD": "a-long-first-admin-passphrase"},
    )


def set_password(username: str, password: str, env: dict) -> None:
    """`changepassword USERNAME`, typed in: with no terminal, getpass reads the two answers from stdin."""
    result = subprocess.run(
        [sys.executable, "manage.py", "changepassword", username],
        cwd=ROOT,
        env=env,
        input=f"{password}\n{password}\n",
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # no controlling terminal
    )
    assert result.returncode == 0 and "changed successfully" in result.stdout, result.stdout + result.stderr


class Browser:
    """A browser at `origin` (what it sends: Host, Origin and Referer on a post, its cookies), speaking plain HTTP
    to `port`: the proxy imitation, or gunicorn itself. Cookies are kept by hand, Secure or not, and remembered
    with their flags so a test can check them."""

    def __init__(self, origin: str, port: int):
        self.origin, self.port = origin, port
        self.cookies: dict[str, str] = {}
        self.flags: dict[str, set[str]] = {}

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Host": self.origin.split("://", 1)[1], **kwargs.pop("headers", {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        answer = httpx.request(method, f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=15, **kwargs)
        for header in answer.headers.get_list("set-cookie"):
            cookie = SimpleCookie(header)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
                self.flags[name] = {flag for flag in ("secure", "httponly") if morsel[flag]}
        return answer

    def sign_in(self, username: str, password: str) -> httpx.Response:
        page = self.request("GET", "/accounts/login/")
        assert page.status_code == 200, (page.status_code, page.headers.get("location"))
        (token,) = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        return self.request(
            "POST",
            "/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Origin": self.origin, "Referer": f"{self.origin}/accounts/login/"},
        )


def test_behind_a_tls_proxy_the_first_admin_signs_in_and_opens_the_console(servers):
    gunicorn = servers(BEHIND_TLS_PROXY)
    env = production_env(**BEHIND_TLS_PROXY)
    first_admin(env)
    with ImitationProxy(gunicorn) as proxy:
        browser = Browser(f"https://{PUBLIC_HOST}", proxy.port)
        signed_in = browser.sign_in("root", "a-long-first-admin-passphrase")
        assert signed_in.status_code == 302 and signed_in.headers["location"] == "/console/", signed_in.text[:500]
        assert browser.flags["sessionid"] == {"secure", "httponly"} and "secure" in browser.flags["csrftoken"]
        console = browser.request("GET", "/console/")
        assert console.status_code == 200 and "Queues" in console.text
        assert console.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    # Straight to gunicorn, plain HTTP with no proxy's word for it: sent to HTTPS, never served.
    direct = Browser(f"http://{PUBLIC_HOST}", gunicorn).request("GET", "/console/")
    assert direct.status_code == 301 and direct.headers["location"] == f"https://{PUBLIC_HOST}/console/"


def test_an_ops_person_given_the_console_by_command_signs_in_behind_the_proxy(servers):
    gunicorn = servers(BEHIND_TLS_PROXY)
    env = production_env(**BEHIND_TLS_PROXY)
    granted = run(["grant_console_access", "olga", "--group", "ops", "--email", "olga@example.test"], env)
    assert "Created olga: groups ops." in granted and "changepassword olga" in granted
    set_password("olga", "olga-signs-in-behind-the-proxy", env)
    olga = get_user_model().objects.get(username="olga")
    assert list(olga.groups.values_list("name", flat=True)) == ["ops"] and not olga.is_staff
    with ImitationProxy(gunicorn) as proxy:
        browser = Browser(f"https://{PUBLIC_HOST}", proxy.port)
        assert browser.sign_in("olga", "olga-signs-in-behind-the-proxy").status_code == 302
        assert browser.request("GET", "/console/items/").status_code == 200


def test_plain_http_on_a_private_network_signs_in_without_tls(servers):
    gunicorn = servers(PLAIN_HTTP)
    first_admin(production_env(**PLAIN_HTTP))
    browser = Browser(f"http://handoff.internal:{gunicorn}", gunicorn)
    signed_in = browser.sign_in("root", "a-long-first-admin-passphrase")
    assert signed_in.status_code == 302 and signed_in.headers["location"] == "/console/"
    # Browsers drop Secure cookies sent over http: these must not be Secure, or nobody could sign in.
    assert "secure" not in browser.flags["sessionid"] and "secure" not in browser.flags["csrftoken"]
    console = browser.request("GET", "/console/")
    assert console.status_code == 200 and "Queues" in console.text
    assert "strict-transport-security" not in console.headers


def test_trusted_origins_let_a_proxy_that_rewrites_host_pass_csrf(servers):
    """A proxy that sends gunicorn its own Host (nginx without `proxy_set_header Host $host`): the browser's
    Origin no longer matches, and only DJANGO_CSRF_TRUSTED_ORIGINS lets the sign-in through."""
    env = production_env(**BEHIND_TLS_PROXY)
    run(["grant_console_access", "rowan", "--group", "rule_owners"], env)
    set_password("rowan", "rowan-behind-a-host-rewriting-proxy", env)
    rewriting = {**BEHIND_TLS_PROXY, "DJANGO_ALLOWED_HOSTS": f"{PUBLIC_HOST},handoff-upstream"}
    without = servers({**rewriting, "DJANGO_CSRF_TRUSTED_ORIGINS": ""})
    with ImitationProxy(without, host="handoff-upstream") as proxy:
        refused = Browser(f"https://{PUBLIC_HOST}", proxy.port).sign_in("rowan", "rowan-behind-a-host-rewriting-proxy")
        assert refused.status_code == 403 and "CSRF" in refused.text
    trusting = servers(rewriting)
    with ImitationProxy(trusting, host="handoff-upstream") as proxy:
        signed_in = Browser(f"https://{PUBLIC_HOST}", proxy.port).sign_in(
            "rowan", "rowan-behind-a-host-rewriting-proxy"
        )
        assert signed_in.status_code == 302


def test_readme_gives_the_recipe_these_tests_follow():
    recipe = readme_section("Configuration (environment)")
    variables = {*BEHIND_TLS_PROXY, *PLAIN_HTTP, "DJANGO_SECURE_SSL_REDIRECT", "DJANGO_SECURE_HSTS_SECONDS"}
    for name in sorted(variables - {"DJANGO_SETTINGS_MODULE"}):
        assert name in recipe, f"README's production recipe does not mention {name}"
    for words in ["createsuperuser", "grant_console_access", "X-Forwarded-Proto", "X-Forwarded-For", "collectstatic"]:
        assert words in recipe, f"README's production recipe does not mention {words}"


def check_deploy(env: dict) -> list[str]:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return sorted(set(re.findall(r"\(security\.(W\d+)\)", result.stderr)))


def test_check_deploy_is_clean_behind_the_proxy_and_names_what_plain_http_gives_up():
    assert check_deploy(BEHIND_TLS_PROXY) == []
    assert check_deploy(PLAIN_HTTP) == ["W004", "W008", "W012", "W016"]
