"""health: GET /health through a running server; the last health directive of the Corefile wins."""

from __future__ import annotations

from conftest import free_port, http_get, running


async def test_health_answers_ok() -> None:
    port = free_port()
    async with running(f". {{\n health 127.0.0.1:{port}\n whoami\n}}\n"):
        assert await http_get(port, "/health") == (200, "text/plain; charset=utf-8", b"OK")


async def test_last_health_wins() -> None:
    first, last = free_port(), free_port()
    corefile = (f"a.test {{\n health 127.0.0.1:{first}\n whoami\n}}\n"
                f"b.test {{\n health 127.0.0.1:{last}\n whoami\n}}\n")
    async with running(corefile):
        assert (await http_get(last, "/health"))[0] == 200
        try:
            status = (await http_get(first, "/health"))[0]
        except OSError:
            status = None  # nothing listens there: the first health line was replaced
        assert status is None
