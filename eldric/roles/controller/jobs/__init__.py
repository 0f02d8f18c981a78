"""The controller's model jobs: put a model on the fleet (pull, distribute), take it off
(delete), and watch it land, worker by worker.

The face the controller uses: Jobs (engine.py: make, follow, cancel, retry, persist,
publish), JobTable and SCHEMA (table.py: its rows in the controller's database) and
add_routes (routes.py: the HTTP API). targets.py says who a job runs on, follow.py
follows one worker's operation, meter.py makes its percent, rate and ETA and a job's
state (derive), events.py feeds the event stream's subscribers, sources.py resolves a
distribution's source.
"""

from eldric.roles.controller.jobs.engine import Jobs
from eldric.roles.controller.jobs.meter import derive
from eldric.roles.controller.jobs.routes import add_routes
from eldric.roles.controller.jobs.table import SCHEMA, JobTable

__all__ = ["SCHEMA", "JobTable", "Jobs", "add_routes", "derive"]
