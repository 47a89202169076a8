"""guahao — open-source hospital appointment registration (预约挂号)."""
