"""What each entry point asks rltrader to do: the typed requests the command line, the Prefect flows, the
deployments and the benches build and the domain runs."""
