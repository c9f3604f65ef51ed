"""A catalog of contracts with run policies (retry, declared errors, limits, interruptible), and its
implementations, served by test workers started with `--catalog tests.policies.contracts:CATALOG
--implementations tests.policies.implementations`."""
