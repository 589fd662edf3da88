"""Past one machine: replay on a Ray cluster (work units, engine actors, a resumable driver)
and shard the live feeds across daemons. Ray is an optional extra: only ``ray_engine`` and
``driver`` import it, and only when ``hydromon replay --cluster`` runs."""
