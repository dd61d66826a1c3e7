"""Google Tasks: the user's task lists and the tasks in one of them, and writes.

``list_tasks`` follows pages up to ``limit`` with a tight ``fields=`` selector. Google
keeps only the date of a task's ``due`` (the time is always midnight UTC), so
:attr:`Task.due` is a ``date``. Tasks completed in Google's own apps are "hidden";
``show_completed=True`` asks for those too.

Writes insert, patch and delete tasks and insert lists. Tasks has no client-chosen
ids: :func:`find_task` tells whether an insert started before a crash reached Google.

Its guarantee: tasks come back in the order Google's apps show them: top-level tasks by
``position``, each followed by its subtasks; a subtask whose parent is not in the result
(filtered out by ``due_max``) is shown at the top level. Odd fields never raise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from workspace.google.client import GoogleClient, NotFound, path_segment, rfc3339, str_at

PAGE_SIZE = 100  # the most tasks.list and tasklists.list return per page
TASK_FIELDS = "id,title,notes,status,due,completed,parent,position,webViewLink"
TASKLIST_FIELDS = "id,title,updated"


@dataclass(frozen=True)
class TaskList:
    id: str
    title: str
    updated: datetime | None


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    notes: str
    status: str  # "needsAction" or "completed"
    completed: bool
    due: date | None
    completed_at: datetime | None
    parent: str | None  # the parent task's id for a subtask
    position: str
    web_link: str | None


async def list_tasklists(client: GoogleClient) -> list[TaskList]:
    listing = await client.get_all(
        "tasks/v1/users/@me/lists",
        limit=1000,
        page_size=PAGE_SIZE,
        fields=f"items({TASKLIST_FIELDS})",
    )
    return [tasklist_from_json(item) for item in listing.items]


async def list_tasks(
    client: GoogleClient,
    tasklist: str = "@default",
    *,
    show_completed: bool = True,
    due_max: datetime | None = None,
    limit: int = 100,
) -> list[Task]:
    """A list's tasks (``@default``: the user's first list), subtasks after their parent."""
    flag = "true" if show_completed else "false"
    params = {"showCompleted": flag, "showHidden": flag}
    if due_max is not None:
        params["dueMax"] = rfc3339(due_max)
    listing = await client.get_all(
        _tasks_path(tasklist),
        limit=limit,
        page_size=PAGE_SIZE,
        params=params,
        fields=f"items({TASK_FIELDS})",
    )
    return ordered([task_from_json(item) for item in listing.items])


async def insert_task(
    client: GoogleClient, tasklist_id: str, body: Mapping[str, Any], *, parent: str | None = None
) -> Task:
    """A new task (first in its list, or among ``parent``'s subtasks)."""
    data = await client.request(
        "POST",
        _tasks_path(tasklist_id),
        params={"parent": parent} if parent else None,
        json=dict(body),
        fields=TASK_FIELDS,
    )
    return task_from_json(data)


async def patch_task(
    client: GoogleClient, tasklist_id: str, task_id: str, body: Mapping[str, Any]
) -> Task:
    """Change the fields in ``body``: complete with ``{"status": "completed"}``, reopen with
    ``{"status": "needsAction", "completed": None}``."""
    data = await client.request(
        "PATCH", _task_path(tasklist_id, task_id), json=dict(body), fields=TASK_FIELDS
    )
    return task_from_json(data)


async def delete_task(client: GoogleClient, tasklist_id: str, task_id: str) -> bool:
    """True if deleted now, False if it was already gone (404: a retry, or deleted since)."""
    try:
        await client.request("DELETE", _task_path(tasklist_id, task_id))
    except NotFound:
        return False
    return True


async def insert_tasklist(client: GoogleClient, title: str) -> TaskList:
    data = await client.request(
        "POST", "tasks/v1/users/@me/lists", json={"title": title}, fields=TASKLIST_FIELDS
    )
    return tasklist_from_json(data)


async def find_task(
    client: GoogleClient, tasklist_id: str, *, title: str, updated_min: datetime
) -> Task | None:
    """The task titled exactly ``title`` changed at or after ``updated_min`` (the newest if
    several), completed and hidden ones included; None if there is none."""
    listing = await client.get_all(
        _tasks_path(tasklist_id),
        limit=1000,
        page_size=PAGE_SIZE,
        params={"showCompleted": "true", "showHidden": "true", "updatedMin": rfc3339(updated_min)},
        fields=f"items({TASK_FIELDS},updated)",
    )
    found = [
        (updated, item)
        for item in listing.items
        if str_at(item, "title") == title
        and (updated := _timestamp(str_at(item, "updated"))) is not None
        and updated >= updated_min
    ]
    return task_from_json(max(found, key=lambda pair: pair[0])[1]) if found else None


def tasklist_from_json(data: Mapping[str, Any]) -> TaskList:
    return TaskList(str_at(data, "id"), str_at(data, "title"), _timestamp(str_at(data, "updated")))


def task_from_json(data: Mapping[str, Any]) -> Task:
    status = str_at(data, "status")
    return Task(
        id=str_at(data, "id"),
        title=str_at(data, "title"),
        notes=str_at(data, "notes"),
        status=status,
        completed=status == "completed",
        due=_due(str_at(data, "due")),
        completed_at=_timestamp(str_at(data, "completed")),
        parent=str_at(data, "parent") or None,
        position=str_at(data, "position"),
        web_link=str_at(data, "webViewLink") or None,
    )


def ordered(tasks: list[Task]) -> list[Task]:
    """Top-level tasks by position, each followed by its subtasks (by position).

    Malformed parent links (cycles, duplicate ids) neither loop nor lose a task.
    """
    by_position = sorted(tasks, key=lambda task: task.position)
    ids = {task.id for task in tasks}
    children: defaultdict[str | None, list[Task]] = defaultdict(list)
    for task in by_position:
        children[task.parent if task.parent in ids else None].append(task)
    shown: set[int] = set()  # id() of the tasks already placed

    def under(parent: str | None) -> Iterator[Task]:
        for task in children[parent]:
            if id(task) not in shown:
                shown.add(id(task))
                yield task
                yield from under(task.id)

    placed = list(under(None))
    return placed + [task for task in by_position if id(task) not in shown]


def _tasks_path(tasklist_id: str) -> str:
    return f"tasks/v1/lists/{path_segment(tasklist_id)}/tasks"


def _task_path(tasklist_id: str, task_id: str) -> str:
    return f"{_tasks_path(tasklist_id)}/{path_segment(task_id)}"


def _due(value: str) -> date | None:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _timestamp(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
