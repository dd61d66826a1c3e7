"""Reading Google Tasks: the user's task lists and the tasks in one of them.

``list_tasks`` follows pages up to ``limit`` with a tight ``fields=`` selector. Google
keeps only the date of a task's ``due`` (the time is always midnight UTC), so
:attr:`Task.due` is a ``date``. Tasks completed in Google's own apps are "hidden";
``show_completed=True`` asks for those too.

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

from workspace.google.client import GoogleClient, path_segment, rfc3339, str_at

PAGE_SIZE = 100  # the most tasks.list and tasklists.list return per page
TASK_FIELDS = "id,title,notes,status,due,completed,parent,position,webViewLink"


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
        fields="items(id,title,updated)",
    )
    return [
        TaskList(str_at(item, "id"), str_at(item, "title"), _timestamp(str_at(item, "updated")))
        for item in listing.items
    ]


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
        f"tasks/v1/lists/{path_segment(tasklist)}/tasks",
        limit=limit,
        page_size=PAGE_SIZE,
        params=params,
        fields=f"items({TASK_FIELDS})",
    )
    return ordered([task_from_json(item) for item in listing.items])


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
