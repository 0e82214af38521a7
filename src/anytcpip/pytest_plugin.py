"""pytest plugin for anytcpip (fixtures are added by the testing issue)."""
