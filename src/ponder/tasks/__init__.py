"""Tasks: how to ask a question, extract the final answer, and compare two answers."""

from ponder.tasks.base import TASKS, Task, get_task

__all__ = ["TASKS", "Task", "get_task"]
