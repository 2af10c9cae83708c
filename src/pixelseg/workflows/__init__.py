"""One module per command: the public function a command calls, composed from the layers
below (data, models, engine, tuning, analysis, deploy). The CLI only parses arguments."""
