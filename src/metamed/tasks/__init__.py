"""Tasks, splits by task, and K-shot episode sampling."""

from metamed.tasks.episodes import (
    Episode,
    EpisodeBatch,
    EpisodeSampler,
    make_episode,
    max_support_size,
    sample_support_query,
    stack_episodes,
)
from metamed.tasks.task import Task, check_support_task, check_task_list, hold_out_rows
from metamed.tasks.taskset import TaskSet, TaskSplit, make_tasks

__all__ = [
    "Episode",
    "EpisodeBatch",
    "EpisodeSampler",
    "Task",
    "TaskSet",
    "TaskSplit",
    "check_support_task",
    "check_task_list",
    "hold_out_rows",
    "make_tasks",
    "make_episode",
    "max_support_size",
    "sample_support_query",
    "stack_episodes",
]
