"""The implementations this server ships; `task-server worker` loads every module here."""
