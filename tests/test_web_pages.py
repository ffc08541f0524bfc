"""The receiver's HTML pages over real HTTP: the status page, the message list, the sign-in form.

What the page shows is read from the store (so any worker's page shows the
same), every status row opens its filtered list, and the delivery figures are
checked against numbers worked out by hand from the traffic each test sends.
The same pages in a real browser, at desktop and phone widths, are in
``test_web_browser``.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from deliverystate import MemoryStore, Status, StatusEvent, Tracker
from deliverystate.web import _page as page_module
from deliverystate.web._figures import FigureCache
from deliverystate.web._page import WINDOWS

from .conftest import StoreFactory
from .test_web import T0, URL, receiver

S = Status


def section(page: str, name: str) -> str:
    """The HTML of the page's ``<section id=name>``."""
    start = page.index(f'<section id="{name}"')
    return page[start : page.index("</section>", start)]


def hrefs(fragment: str) -> list[str]:
    """The links in an HTML fragment, unescaped."""
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', fragment)]


def listed_ids(page: str) -> list[str]:
    """The message ids of a list page's table, in order."""
    if 'id="list"' not in page:
        return []
    table = page[page.index('id="list"') :]
    return [html.unescape(i) for i in re.findall(r'<td class="id"><a [^>]*>([^<]*)</a>', table)]


def now_ms() -> int:
    """The clock, in ms (the page's windows end at the present)."""
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def at(ms: int, message_id: str, status: Status, channel: str | None) -> StatusEvent:
    """A report at ``ms``."""
    return StatusEvent.from_ms(message_id, status, ms, channel)


def test_the_page_lists_the_store_s_newest_messages_not_what_this_process_heard() -> None:
    """Messages applied elsewhere (another worker, a replay) are on the page, newest first."""
    tracker = Tracker()
    tracker.apply_many([at(T0 + i * 1000, f"elsewhere-{i}", S.QUEUED, "sms") for i in range(4)])
    with receiver(tracker, recent=3) as client:
        recent = section(client.get("/").text, "recent")
    ids = re.findall(r'<td class="id"><a [^>]*>([^<]*)</a>', recent)
    assert ids == ["elsewhere-3", "elsewhere-2", "elsewhere-1"]


def test_each_status_row_links_to_its_filtered_list(open_sql_store: StoreFactory) -> None:
    """Following a status's link lists exactly the messages counted in that row."""
    tracker = Tracker(open_sql_store())
    outcomes = [S.DEVICE_ACK] * 3 + [S.EXPIRED] * 2 + [S.READ]
    for index, status in enumerate(outcomes):
        tracker.apply(at(T0 + index, f"m{index}", status, "sms"))
    with receiver(tracker) as client:
        counts = section(client.get("/").text, "counts")
        links = dict(re.findall(r'data-status="(\w+)"><td><a href="([^"]*)"', counts))
        assert set(links) == {"DEVICE_ACK", "EXPIRED", "READ"}
        for status, href in links.items():
            ids = listed_ids(client.get(html.unescape(href)).text)
            assert sorted(ids) == sorted(
                f"m{i}" for i, s in enumerate(outcomes) if s.name == status
            )
        total = next(h for h in hrefs(counts) if h.endswith("/list"))
        assert len(listed_ids(client.get(total).text)) == len(outcomes)


def channel_row(page: str, channel: str) -> list[str]:
    """The cells of the delivery table's row for ``channel``, as text."""
    row = re.search(rf'<tr data-channel="{channel}">(.*?)</tr>', section(page, "delivery"))
    assert row is not None, f"no row for {channel}"
    return [html.unescape(c) for c in re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", row.group(1))]


def test_delivery_by_channel_gives_rates_and_latencies_worked_out_by_hand() -> None:
    """Four SMS (three delivered after 10, 20, 30 s) and two WhatsApp (one read after 60 s)."""
    tracker = Tracker()
    sent = now_ms() - 2 * 3_600_000
    events = []
    for index, delay in enumerate([10, 20, 30, None]):
        events.append(at(sent, f"s{index}", S.QUEUED, "sms"))
        if delay is not None:
            events.append(at(sent + delay * 1000, f"s{index}", S.DEVICE_ACK, "sms"))
    events += [
        at(sent, "w0", S.QUEUED, "whatsapp"),
        at(sent + 4000, "w0", S.DEVICE_ACK, "whatsapp"),
        at(sent + 60_000, "w0", S.READ, "whatsapp"),
        at(sent, "w1", S.QUEUED, "whatsapp"),
        at(sent + 9000, "w1", S.WHATSAPP_HSM_NOT_AVAILABLE, "whatsapp"),
    ]
    tracker.apply_many(events)
    with receiver(tracker) as client:
        page = client.get("/").text
        assert channel_row(page, "sms") == [
            "sms", "4", "75.0%", "0.0%", "0.0%", "20.0 s", "28.0 s", "-", "-",
        ]  # fmt: skip
        assert channel_row(page, "whatsapp") == [
            "whatsapp", "2", "50.0%", "50.0%", "50.0%", "4.0 s", "4.0 s", "60.0 s", "60.0 s",
        ]  # fmt: skip
        chart = section(page, "delivery")
        assert chart.count('<circle class="point" data-channel="sms"') == 1
        assert "4 messages, 75% delivered, median 20.0 s" in chart
        # the last hour holds none of them
        hour = client.get("/", params={"window": "1h"}).text
        assert "No message was first reported in this window" in section(hour, "delivery")
        assert 'id="trend"' not in hour
        assert '<strong aria-current="true">1h</strong>' in hour


def test_an_unknown_window_falls_back_to_the_last_day() -> None:
    """A window the page does not offer is read as the default, not refused."""
    with receiver(Tracker()) as client:
        page = client.get("/", params={"window": "5y"})
    assert page.status_code == 200
    assert '<strong aria-current="true">24h</strong>' in page.text


def test_the_dead_letter_is_counted_and_its_newest_bodies_shown_escaped() -> None:
    """Unreadable bodies are counted; the newest are listed first, escaped and cut short."""
    tracker = Tracker()
    with receiver(tracker) as client:
        assert 'id="dead-letter-count">0<' in client.get("/").text
        bodies = ['{"a": 1', "<script>alert(1)</script>", "[" + "x" * 400]
        for body in bodies:
            response = client.post(URL, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400
        dead = section(client.get("/").text, "dead-letters")
    assert 'id="dead-letter-count">3<' in dead
    assert "<script>" not in dead
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dead
    assert "x" * 160 not in dead
    assert "…" in dead
    shown = [int(n) for n in re.findall(r'<tr><td class="num">(\d+)</td>', dead)]
    assert shown == sorted(shown, reverse=True)
    assert len(shown) == 3


def test_auto_refresh_is_a_toggle_that_the_links_keep() -> None:
    """``?refresh=10`` adds a meta refresh that other links keep; unknown periods are off."""
    tracker = Tracker()
    tracker.apply(at(T0, "r1", S.QUEUED, "sms"))
    with receiver(tracker) as client:
        assert 'http-equiv="refresh"' not in client.get("/").text
        page = client.get("/", params={"refresh": "10"}).text
        assert '<meta http-equiv="refresh" content="10">' in page
        windows = re.search(r'<nav class="windows".*?</nav>', page)
        assert windows is not None
        assert all("refresh=10" in h for h in hrefs(windows.group(0)))
        assert 'http-equiv="refresh"' not in client.get("/", params={"refresh": "1"}).text
        listed = client.get("/list", params={"refresh": "60", "status": "QUEUED"}).text
        assert '<meta http-equiv="refresh" content="60">' in listed
        assert listed_ids(listed) == ["r1"]


def test_with_a_token_the_pages_ask_for_it_in_a_form() -> None:
    """Without the token: an HTML form (401) that keeps the filters; JSON reads stay JSON."""
    tracker = Tracker()
    tracker.apply(at(T0, "t1", S.READ, "whatsapp"))
    with receiver(tracker, token="open sesame") as client:
        page = client.get("/list", params={"status": "READ"})
        assert page.status_code == 401
        assert page.headers["content-type"].startswith("text/html")
        assert '<input type="password" name="token"' in page.text
        assert '<input type="hidden" name="status" value="READ">' in page.text
        assert "not the one" not in page.text
        wrong = client.get("/", params={"token": "open sesam"})
        assert wrong.status_code == 401
        assert "not the one this server was started with" in wrong.text
        assert client.get("/messages").json()["error"].startswith("unauthorized")
        opened = client.get("/list", params={"status": "READ", "token": "open sesame"})
        assert opened.status_code == 200
        assert listed_ids(opened.text) == ["t1"]
        assert all("token=open+sesame" in h for h in hrefs(opened.text) if "?" in h)


def test_with_basic_credentials_only_the_browser_asks_for_them() -> None:
    """Without a token configured there is nothing to type in a form: a Basic challenge."""
    with receiver(Tracker(), basic_auth=("ops", "pw")) as client:
        page = client.get("/")
        assert page.status_code == 401
        assert page.headers["www-authenticate"].startswith("Basic")
        assert client.get("/", auth=("ops", "pw")).status_code == 200


def test_the_list_page_pages_like_the_json_list(open_sql_store: StoreFactory) -> None:
    """Following "Next page" visits every message once, in the order ``/messages`` gives."""
    tracker = Tracker(open_sql_store())
    tracker.apply_many([at(T0 + (i % 3) * 1000, f"p{i}", S.DEVICE_ACK, "sms") for i in range(7)])
    with receiver(tracker) as client:
        expected = [m["message_id"] for m in client.get("/messages").json()["messages"]]
        seen: list[str] = []
        href: str | None = "/list?limit=3"
        while href is not None:
            page = client.get(href).text
            seen += listed_ids(page)
            after = re.search(r'<a id="next" rel="next" href="([^"]*)"', page)
            href = html.unescape(after.group(1)) if after else None
        assert seen == expected
        assert len(seen) == 7
        as_json = next(h for h in hrefs(client.get("/list?limit=3").text) if "/messages?" in h)
        assert [m["message_id"] for m in client.get(as_json).json()["messages"]] == expected[:3]


def test_the_list_page_reads_its_own_form_and_shows_bad_filters_on_the_page() -> None:
    """Blank form fields mean no filter; a bad one is a 400 page naming it, with the form."""
    tracker = Tracker()
    tracker.apply(at(T0, "<b>bold</b>", S.QUEUED, "sms"))
    tracker.apply(at(T0, "w", S.QUEUED, "whatsapp"))
    with receiver(tracker) as client:
        blank = {"status": "", "channel": "", "since": "", "until": ""}
        page = client.get("/list", params=blank)
        assert page.status_code == 200
        assert sorted(listed_ids(page.text)) == ["<b>bold</b>", "w"]
        assert "<b>bold</b>" not in page.text
        chosen = client.get("/list", params={"channel": "WhatsApp"}).text
        assert listed_ids(chosen) == ["w"]
        assert '<option value="whatsapp" selected>' in chosen
        for params, named in [
            ({"status": "DELIVERED"}, "status 'DELIVERED'"),
            ({"since": "yesterday"}, "since 'yesterday'"),
            ({"colour": "red"}, "unknown parameter 'colour'"),
        ]:
            bad = client.get("/list", params=params)
            assert bad.status_code == 400
            assert html.escape(named) in bad.text
            assert 'id="filters"' in bad.text


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_page_s_figures_are_read_once_per_window_until_they_are_stale() -> None:
    """Within the time to live the figures are reused; after it they are read again."""
    store = MemoryStore()
    tracker = Tracker(store)
    clock = Clock()
    cache = FigureCache(store, WINDOWS, ttl=10, clock=clock)
    now = datetime.now(timezone.utc)
    tracker.apply(StatusEvent("c1", S.QUEUED, now - timedelta(minutes=3), "sms"))
    first = cache.get("1h", now)
    assert first.stats.messages == 1
    tracker.apply(StatusEvent("c2", S.QUEUED, now - timedelta(minutes=2), "sms"))
    clock.now += 9.9
    assert cache.get("1h", now) is first
    assert cache.get("24h", now).stats.messages == 2  # each window has its own
    clock.now += 0.2
    assert cache.get("1h", now).stats.messages == 2


def test_figures_that_were_slow_to_read_are_kept_ten_times_as_long() -> None:
    """A read that took 5 s is reused for 50 s, so the page never takes over a core."""
    store = MemoryStore()
    clock = Clock()
    slow = store.milestones

    def milestones(since_ms: int | None = None) -> Any:
        clock.now += 5.0
        return slow(since_ms)

    store.milestones = milestones  # type: ignore[method-assign]
    cache = FigureCache(store, WINDOWS, ttl=10, clock=clock)
    now = datetime.now(timezone.utc)
    first = cache.get("24h", now)
    clock.now += 49.0
    assert cache.get("24h", now) is first
    clock.now += 1.5
    assert cache.get("24h", now) is not first


@pytest.mark.parametrize("path", ["/", "/list"])
def test_pages_under_a_hostile_token_stay_well_formed(path: str) -> None:
    """A token with quotes and markup is escaped wherever the page repeats it."""
    token = '"><script>x</script>'
    with receiver(Tracker(), token=token) as client:
        page = client.get(path, params={"token": token})
    assert page.status_code == 200
    assert "<script>x" not in page.text


def test_the_search_box_finds_a_message_by_its_id_or_by_its_client_id(
    open_sql_store: StoreFactory,
) -> None:
    """?q= finds a message by id or by its client id, lists several that share one, 404s none."""
    tracker = Tracker(open_sql_store())
    tracker.apply_many(
        [
            StatusEvent.from_ms("m-1", S.DEVICE_ACK, T0, "sms", "order-1"),
            StatusEvent.from_ms("m-2", S.QUEUED, T0 + 1000, "sms", "order-2"),
            StatusEvent.from_ms("m-3", S.QUEUED, T0 + 2000, "sms", "order-2"),
        ]
    )
    with receiver(tracker) as client:
        by_id = client.get("/", params={"q": "m-2"})
        by_client = client.get("/", params={"q": "order-1"})
        several = client.get("/", params={"q": "order-2"})
        nobody = client.get("/", params={"q": "order-9"})
    assert by_id.status_code == 200
    assert "<code>m-2</code> is" in section(by_id.text, "search")
    assert by_client.status_code == 200
    assert "<code>m-1</code> is" in section(by_client.text, "search")
    assert several.status_code == 200
    result = section(several.text, "search")
    assert re.findall(r'<td class="id"><a [^>]*>([^<]*)</a>', result) == ["m-3", "m-2"]
    assert "/list?client_message_id=order-2" in hrefs(result)
    assert nobody.status_code == 404
    assert 'class="not-found"' in nobody.text


def test_the_timeline_and_the_list_say_which_reports_were_local(
    open_sql_store: StoreFactory,
) -> None:
    """A registered send and a sweep's expiry read as local, a callback as the provider's."""
    tracker = Tracker(open_sql_store())
    long_ago = datetime.now(timezone.utc) - timedelta(days=10)
    tracker.register("swept", channel="sms", sent_at=long_ago, client_message_id="order-7")
    tracker.sweep(long_ago + timedelta(days=5))
    tracker.apply(StatusEvent("heard", S.DEVICE_ACK, long_ago, "sms"))
    with receiver(tracker) as client:
        swept = section(client.get("/", params={"q": "swept"}).text, "search")
        heard = section(client.get("/", params={"q": "heard"}).text, "search")
        listed = client.get("/list").text
    assert re.findall(r"<td>(local[^<]*|provider)</td></tr>", swept) == [
        "local: send registered",
        "local: deadline sweep",
    ]
    assert "<strong>local: deadline sweep</strong>" in swept
    assert re.findall(r"<td>(local[^<]*|provider)</td></tr>", heard) == ["provider"]
    swept_row = listed[listed.index(">swept</a>") :].split("</tr>")[0]
    assert "(local)" in swept_row
    assert '<td class="id">order-7</td>' in swept_row
    heard_row = listed[listed.index(">heard</a>") :].split("</tr>")[0]
    assert "(local)" not in heard_row


def test_without_graphviz_the_page_draws_the_shipped_lifecycle_svg(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No dot on PATH: the lifecycle is the packaged SVG, never mermaid text."""
    monkeypatch.setenv("PATH", "")
    page_module.lifecycle_figure.cache_clear()
    try:
        figure = page_module.lifecycle_figure()
    finally:
        page_module.lifecycle_figure.cache_clear()
    assert figure.startswith("<svg")
    assert "stateDiagram" not in figure


def test_the_shipped_lifecycle_svg_is_the_committed_one() -> None:
    """web/lifecycle.svg equals diagrams/lifecycle.svg: copy it after regenerating diagrams/."""
    root = Path(__file__).parent.parent
    shipped = root / "src" / "deliverystate" / "web" / "lifecycle.svg"
    committed = root / "diagrams" / "lifecycle.svg"
    assert shipped.read_bytes() == committed.read_bytes(), "cp diagrams/lifecycle.svg " + str(
        shipped.relative_to(root)
    )


def test_the_all_window_shows_old_traffic_with_its_failures_by_reason(
    open_sql_store: StoreFactory,
) -> None:
    """Months-old messages are empty in 30d but counted and charted in 'all', failures listed."""
    tracker = Tracker(open_sql_store())
    old = T0  # 2026-01-01, long before the page's clock
    events = [at(old + i * 60_000, f"old-{i}", S.DEVICE_ACK, "sms") for i in range(5)]
    events += [at(old + 3_600_000, "gone-1", S.ROUTING_ERROR, "sms")]
    events += [at(old + 3_700_000 + i, f"gone-{i + 2}", S.EXPIRED, "sms") for i in range(2)]
    tracker.apply_many(events)
    with receiver(tracker) as client:
        month = section(client.get("/", params={"window": "30d"}).text, "delivery")
        every = section(client.get("/", params={"window": "all"}).text, "delivery")
    assert "No message was first reported in this window" in month
    assert "Every message the store holds" in every
    row = re.search(r'<tr data-channel="sms">(.*?)</tr>', every)
    assert row is not None
    cells = re.findall(r'class="num[^"]*"[^>]*>([^<]*)<', row.group(1))
    assert cells[:3] == ["8", "62.5%", "37.5%"]
    failures = re.findall(r'<tr data-status="(\w+)">.*?class="num count"[^>]*>(\d+)<', every)
    assert failures == [("EXPIRED", "2"), ("ROUTING_ERROR", "1")]
    links = [h for h in hrefs(every) if h.startswith("/list?status=")]
    assert links == ["/list?status=EXPIRED", "/list?status=ROUTING_ERROR"]  # no since: all
    assert 'id="trend"' in every


def test_a_window_s_failure_links_keep_the_window() -> None:
    """In a timed window, a failure's link lists that status since the window's start."""
    tracker = Tracker()
    tracker.apply(at(now_ms() - 60_000, "late-1", S.ROUTING_ERROR, "sms"))
    with receiver(tracker) as client:
        day = section(client.get("/").text, "delivery")
        (link,) = [h for h in hrefs(day) if h.startswith("/list?status=ROUTING_ERROR")]
        assert "&since=" in link
        assert listed_ids(client.get(link).text) == ["late-1"]


def test_the_chart_breaks_its_line_at_empty_slots_and_sizes_points_by_volume() -> None:
    """No line crosses an empty hour; an 8-message point has over 3x a 1-message point's area."""
    tracker = Tracker()
    hour = 3_600_000
    start = now_ms() // hour * hour - 10 * hour
    events = [at(start + i, f"a-{i}", S.DEVICE_ACK, "sms") for i in range(8)]
    events += [at(start + hour, "b-0", S.DEVICE_ACK, "sms")]
    events += [at(start + 5 * hour, "c-0", S.QUEUED, "sms")]  # after three empty hours
    tracker.apply_many(events)
    with receiver(tracker) as client:
        chart = section(client.get("/").text, "delivery")
    polylines = re.findall(r'<polyline [^>]*points="([^"]*)"', chart)
    assert [len(p.split()) for p in polylines] == [2]  # hours 0-1 joined; hour 5 stands alone
    radii = {
        int(n): float(r)
        for n, r in re.findall(r'data-messages="(\d+)" cx="[^"]*" cy="[^"]*" r="([^"]*)"', chart)
    }
    assert sorted(radii) == [1, 8]
    assert radii[8] ** 2 > 3 * radii[1] ** 2


def test_every_window_answers_on_both_stores(open_sql_store: StoreFactory) -> None:
    """Each window of the delivery section, "all" included, answers 200 with its figures."""
    tracker = Tracker(open_sql_store())
    tracker.apply_many([at(now_ms() - 60_000, "w-1", S.DEVICE_ACK, "sms")])
    with receiver(tracker) as client:
        pages = {name: client.get("/", params={"window": name}) for name in WINDOWS}
    assert sorted(pages) == ["1h", "24h", "30d", "7d", "all"]
    for name, page in pages.items():
        assert page.status_code == 200, name
        assert f'<strong aria-current="true">{name}</strong>' in page.text
        assert '<tr data-channel="sms">' in section(page.text, "delivery"), name
