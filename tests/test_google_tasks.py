"""Tasks reads: task lists, tasks over two pages with their parameters, due dates, and
the order Google's apps show (parents by position, subtasks after their parent)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from tests.google_bodies import (
    task,
)
from workspace.google.tasks import (
    TASK_FIELDS,
    Task,
    list_tasklists,
    list_tasks,
    ordered,
    task_from_json,
)


def page(items: list[dict], next_page: str = "") -> httpx.Response:
    body = {"kind": "tasks#tasks", "etag": '"e"', "items": items}
    return httpx.Response(200, json={**body, **({"nextPageToken": next_page} if next_page else {})})


async def test_list_tasks_pages_and_orders_subtasks_after_their_parent(google_api, google_client):
    route = google_api.get(path__startswith="/tasks/v1/lists/").mock(
        side_effect=[
            page(
                [
                    task("sub-b2", "00000000000000000001", parent="b"),
                    task("b", "00000000000000000001", due="2026-03-10T00:00:00.000Z", notes="Call"),
                    task("a", "00000000000000000000"),
                ],
                next_page="p2",
            ),
            page(
                [
                    task("sub-b1", "00000000000000000000", parent="b"),
                    task(
                        "done",
                        "00000000000000000002",
                        status="completed",
                        completed="2026-03-01T10:30:00.000Z",
                        hidden=True,
                    ),
                ]
            ),
        ]
    )
    due_max = datetime(2026, 3, 31, tzinfo=ZoneInfo("Europe/Paris"))
    found = await list_tasks(google_client, due_max=due_max, limit=10)
    assert [t.id for t in found] == ["a", "b", "sub-b1", "sub-b2", "done"]
    first, second = route.calls
    assert first.request.url.raw_path.startswith(b"/tasks/v1/lists/@default/tasks?")
    assert dict(first.request.url.params) == {
        "showCompleted": "true",
        "showHidden": "true",
        "dueMax": "2026-03-31T00:00:00+02:00",
        "maxResults": "10",
        "fields": f"nextPageToken,items({TASK_FIELDS})",
    }
    assert second.request.url.params["pageToken"] == "p2"
    b, done = found[1], found[4]
    assert (b.title, b.notes, b.due, b.completed, b.status) == (
        "Task b",
        "Call",
        date(2026, 3, 10),
        False,
        "needsAction",
    )
    assert done.completed and done.completed_at == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert found[2].parent == "b" and found[0].parent is None


async def test_hiding_completed_tasks(google_api, google_client):
    route = google_api.get(path__startswith="/tasks/v1/lists/").mock(return_value=page([]))
    assert await list_tasks(google_client, "list/1", show_completed=False) == []
    request = route.calls.last.request
    assert request.url.raw_path.startswith(b"/tasks/v1/lists/list%2F1/tasks?")
    assert (request.url.params["showCompleted"], request.url.params["showHidden"]) == (
        "false",
        "false",
    )
    assert "dueMax" not in request.url.params


async def test_list_tasklists(google_api, google_client):
    route = google_api.get("/tasks/v1/users/@me/lists").mock(
        return_value=httpx.Response(
            200,
            json={
                "kind": "tasks#taskLists",
                "items": [
                    {
                        "kind": "tasks#taskList",
                        "id": "MDE",
                        "title": "My Tasks",
                        "updated": "2026-03-01T09:00:00.000Z",
                    },
                    {"id": "MDI", "title": "Groceries", "updated": "not a date"},
                ],
            },
        )
    )
    lists = await list_tasklists(google_client)
    assert [(tl.id, tl.title) for tl in lists] == [("MDE", "My Tasks"), ("MDI", "Groceries")]
    assert lists[0].updated == datetime(2026, 3, 1, 9, tzinfo=UTC) and lists[1].updated is None
    assert route.calls.last.request.url.params["fields"] == "nextPageToken,items(id,title,updated)"


def test_orphans_cycles_and_duplicates_neither_loop_nor_vanish():
    tasks = [
        task_from_json(body)
        for body in [
            task("orphan", "3", parent="filtered-out"),
            task("x", "1", parent="y"),
            task("y", "2", parent="x"),
            task("top", "0"),
            task("top", "5"),
        ]
    ]
    assert [(t.id, t.position) for t in ordered(tasks)] == [
        ("top", "0"),
        ("orphan", "3"),
        ("top", "5"),
        ("x", "1"),
        ("y", "2"),
    ]


def test_odd_task_fields_never_raise():
    odd: Task = task_from_json(
        {"id": 5, "title": None, "due": "someday", "completed": "2026-13-99", "parent": ""}
    )
    assert (odd.id, odd.title, odd.due, odd.completed_at, odd.parent, odd.completed) == (
        "",
        "",
        None,
        None,
        None,
        False,
    )


def test_due_keeps_only_the_date_google_stores():
    due = task_from_json(task("t", "0", due="2026-03-10T00:00:00.000Z")).due
    assert due == date(2026, 3, 10) and not isinstance(due, datetime)
    assert due - date(2026, 3, 9) == timedelta(days=1)
