<?php

declare(strict_types=1);

// Round trips of the generated PHP caller: `php round_trips.php AUTOLOAD URL CALLS` prints the seconds of each call as JSON.

require $argv[1];

$client = new Tasks\Client($argv[2]);
$call = static function () use ($client): void {
    if ($client->mathAdd(4, 7) !== 11) {
        fwrite(STDERR, "add(4, 7) is not 11\n");
        exit(1);
    }
};
for ($i = 0; $i < 30; $i++) { // warm-up, as the Python sides get
    $call();
}
$times = [];
for ($i = 0, $calls = (int) $argv[3]; $i < $calls; $i++) {
    $started = hrtime(true);
    $call();
    $times[] = (hrtime(true) - $started) / 1e9;
}
$client->close();
echo json_encode($times), "\n";
