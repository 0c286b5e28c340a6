"""In-repo models under study. Each is referenced from `conf/model/*.yaml` by `_target_`."""
