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
from metamed.tasks.task import Task
from metamed.tasks.taskset import TaskSet, TaskSplit

__all__ = [
    "Episode",
    "EpisodeBatch",
    "EpisodeSampler",
    "Task",
    "TaskSet",
    "TaskSplit",
    "make_episode",
    "max_support_size",
    "sample_support_query",
    "stack_episodes",
]
