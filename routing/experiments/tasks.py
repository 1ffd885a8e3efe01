"""Celery task for experiments: end those whose end time has passed (beat, every minute)."""

from celery import shared_task

from routing.dispatch import TaskName
from routing.experiments.lifecycle import experiments_end_due


@shared_task(name=TaskName.END_DUE_EXPERIMENTS, acks_late=True)
def end_due_experiments_task() -> int:
    return experiments_end_due()
