"""Models written as a NEST user would write them (plain PyNEST in ``build``), to check that
einet stores and restores networks other than its reference one."""
