"""Tasks, splits by task, and K-shot episode sampling."""

from metamed.tasks.episodes import (
    SUPPORT_SAMPLERS,
    Episode,
    EpisodeBatch,
    EpisodeSampler,
    check_sampler,
    make_episode,
    max_support_size,
    min_support_size,
    sample_k_per_class,
    sample_support_query,
    stack_episodes,
)
from metamed.tasks.images import IMAGE_SPLITS, ImageTasks, image_tasks
from metamed.tasks.rare import RareRule, RareSplit, rare_split, unusable_reason
from metamed.tasks.sites import SiteRule, SiteSplit, site_split
from metamed.tasks.task import Task, check_support_task, check_task_list, hold_out_rows
from metamed.tasks.taskset import TaskSet, TaskSplit, make_tasks

__all__ = [
    "IMAGE_SPLITS",
    "SUPPORT_SAMPLERS",
    "Episode",
    "EpisodeBatch",
    "EpisodeSampler",
    "ImageTasks",
    "RareRule",
    "RareSplit",
    "SiteRule",
    "SiteSplit",
    "Task",
    "TaskSet",
    "TaskSplit",
    "check_sampler",
    "check_support_task",
    "check_task_list",
    "hold_out_rows",
    "image_tasks",
    "make_tasks",
    "make_episode",
    "rare_split",
    "max_support_size",
    "min_support_size",
    "sample_k_per_class",
    "sample_support_query",
    "site_split",
    "unusable_reason",
    "stack_episodes",
]
