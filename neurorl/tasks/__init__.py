"""Tasks: vectorised generators of trials, registered by name."""

from .base import TASKS, Task, TaskEnv, list_tasks, make_task, register_task

__all__ = ["TASKS", "Task", "TaskEnv", "list_tasks", "make_task", "register_task"]
