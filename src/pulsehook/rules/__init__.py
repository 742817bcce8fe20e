"""Alert rules: loaded from files (never executed), validated, evaluated safely."""
