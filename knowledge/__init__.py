"""Knowledge: the alarm catalogue, procedures and standards notes the alarm manager and assistant use."""
