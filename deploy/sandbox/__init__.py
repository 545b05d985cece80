"""The sandbox: a simulated trading platform with a chaos API that injects real faults."""
