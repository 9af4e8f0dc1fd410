"""The simulated plant: one Modbus TCP device per real device, with physics and fault injection."""
