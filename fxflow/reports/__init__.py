"""What people read: the terminal summary, and the reports the pipeline renders after a stage.

A stage report is chosen by the facts a stage recorded (a stage that recorded `partitions`
gets the partition report), so transforms never import reports and a new report needs no
change to any transform.
"""
