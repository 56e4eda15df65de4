"""Experiment suites: named ladders of run variants, the FER2013 studies' among them.

Every run of a suite is tagged `suite:NAME`, `variant:V` and `seed:S`, so `suite_report` can average
repeats. Suites run through the job queue like every other run (`fer.jobs.submit.run_suite`).
"""
from fer.jobs.suites import ladders, studies  # noqa: F401  (registers the suites)
from fer.jobs.suites._registry import SUITES, Variant
from fer.jobs.suites.runner import suite_configs, suite_curves, suite_report, suite_runs
from fer.jobs.suites.studies import fit_to_data, study_recipe
from fer.jobs.suites.study_records import STUDIES, Reported, Study
from fer.jobs.suites.study_tables import study_table

__all__ = ["SUITES", "STUDIES", "Reported", "Study", "Variant", "fit_to_data", "study_recipe", "study_table",
           "suite_configs", "suite_curves", "suite_report", "suite_runs"]
