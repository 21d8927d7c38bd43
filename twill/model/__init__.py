"""Loop specs, machines and schedules: loading, validation and the normalized problem."""
