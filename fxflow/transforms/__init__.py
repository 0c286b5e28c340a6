"""Graph transforms: one step per module, each a pydantic component built from config.

A recipe names a transform by its class path (`_target_: fxflow.transforms.sizing.SizeNodes`);
`fxflow.plan.load_transforms` imports every module here so error messages can list them all.
Adding a transform: a module here, its entry in `conf/transform/`, a recipe that uses it.
"""
