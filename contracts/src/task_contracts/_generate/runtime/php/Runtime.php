<?php

declare(strict_types=1);

// The runtime of the generated callers, written once by hand (task-contracts ships it and
// `task-contracts generate php` copies it): it speaks the wire format of docs/wire.md. A call is one
// LPUSH of a Celery protocol-v2 envelope to the contract's queue, with the contract_shape header;
// the worker publishes the record on this client's reply channel (task-client-<hex>), and a GET of
// celery-task-meta-<id> every half second covers workers that publish on the task's channel only.
// Commands go through phpredis; the reply channel is read from a plain socket, because phpredis's
// subscribe() blocks inside its callback loop and could not publish or time out in between.

namespace Tasks;

/** Root of the errors a generated caller throws. */
class TaskError extends \RuntimeException
{
}

/** The arguments break the contract. Thrown before anything is published. */
final class InvalidArguments extends TaskError
{
    /** @param list<string> $problems one line per offending parameter */
    public function __construct(public readonly string $contract, public readonly array $problems)
    {
        parent::__construct("invalid arguments for {$contract}: " . implode('; ', $problems));
    }
}

/** The task ran, or the worker refused it, and failed: the worker-side exception's type and message. */
final class TaskFailed extends TaskError
{
    public function __construct(
        public readonly string $contract,
        public readonly string $taskId,
        public readonly string $remoteType,
        public readonly string $remoteMessage,
        public readonly ?string $remoteTraceback = null,
    ) {
        parent::__construct("{$contract} failed on the worker: {$remoteType}: {$remoteMessage}");
    }
}

/** No worker serves this contract. */
final class UnknownTask extends TaskError
{
}

/** The worker holds another version of the contract and the difference breaks this call. */
final class ContractMismatch extends TaskError
{
}

/** No result within the bound. The task may still run: wait again with the handle. */
final class TaskTimeout extends TaskError
{
    public function __construct(public readonly string $contract, public readonly string $taskId, public readonly float $timeout)
    {
        parent::__construct("{$contract} {$taskId}: no result within {$timeout} s (the task may still run)");
    }
}

/** The call was cancelled before it ran, or stopped while running. */
final class TaskCancelled extends TaskError
{
}

/** Redis could not be reached in time, or refused a command. The URL never holds a password. */
final class BrokerUnavailable extends TaskError
{
    public function __construct(public readonly string $url, string $reason)
    {
        parent::__construct("broker {$url} unavailable: {$reason}");
    }
}

/** What the runtime needs to know of one contract; the generated client holds one per contract. */
final class Contract
{
    public function __construct(
        public readonly string $name,
        public readonly string $queue,
        public readonly float $timeout,
        public readonly string $shape,
    ) {
    }
}

/** One Redis for broker and results: commands through phpredis, the reply channel on a socket. */
final class Connection
{
    public const IO_TIMEOUT = 1.0;
    public const FALLBACK_INTERVAL = 0.5;

    public readonly string $replyChannel;
    public readonly string $safeUrl;
    private string $host;
    private int $port;
    private ?string $user;
    private ?string $password;
    private int $db;
    private ?\Redis $redis = null;
    /** @var resource|null */
    private $subscriber = null;
    /** @var array<string, array<string, mixed>> the last record heard per task id */
    private array $heard = [];

    public function __construct(string $url)
    {
        $parts = parse_url($url);
        if ($parts === false || ($parts['scheme'] ?? '') !== 'redis') {
            throw new \InvalidArgumentException("not a redis:// URL: {$url}");
        }
        $this->host = $parts['host'] ?? '127.0.0.1';
        $this->port = $parts['port'] ?? 6379;
        $this->user = isset($parts['user']) && $parts['user'] !== '' ? urldecode($parts['user']) : null;
        $this->password = isset($parts['pass']) ? urldecode($parts['pass']) : null;
        $this->db = (int) ltrim($parts['path'] ?? '/0', '/');
        $this->safeUrl = "redis://{$this->host}:{$this->port}/{$this->db}";
        $this->replyChannel = 'task-client-' . bin2hex(random_bytes(16));
    }

    public function unavailable(string $reason): BrokerUnavailable
    {
        return new BrokerUnavailable($this->safeUrl, $reason);
    }

    /** A phpredis command, every failure as BrokerUnavailable. */
    public function command(string $name, mixed ...$args): mixed
    {
        try {
            if ($this->redis === null) {
                $redis = new \Redis();
                $redis->connect($this->host, $this->port, self::IO_TIMEOUT, null, 0, self::IO_TIMEOUT);
                if ($this->password !== null) {
                    $redis->auth($this->user !== null ? [$this->user, $this->password] : $this->password);
                }
                $redis->select($this->db);
                $this->redis = $redis;
            }
            return $this->redis->{$name}(...$args);
        } catch (\RedisException $error) {
            $this->redis = null;
            throw $this->unavailable($error->getMessage());
        }
    }

    /** Subscribe to the reply channel once (again after a lost connection), before any publish. */
    public function listen(): void
    {
        if ($this->subscriber !== null) {
            return;
        }
        $socket = @stream_socket_client("tcp://{$this->host}:{$this->port}", $code, $reason, self::IO_TIMEOUT);
        if ($socket === false) {
            throw $this->unavailable($reason !== '' ? $reason : "cannot connect ({$code})");
        }
        stream_set_timeout($socket, (int) self::IO_TIMEOUT);
        $this->subscriber = $socket;
        try {
            if ($this->password !== null) {
                $this->send($this->user !== null ? ['AUTH', $this->user, $this->password] : ['AUTH', $this->password]);
                $this->read();
            }
            $this->send(['SUBSCRIBE', $this->replyChannel]);
            $this->read();
        } catch (BrokerUnavailable $error) {
            $this->drop();
            throw $error;
        }
    }

    /**
     * The record heard for a task within $seconds, or null: reads the reply channel, and if the
     * subscriber is gone leaves the caller to its GET fallback.
     *
     * @return array<string, mixed>|null
     */
    public function hear(string $taskId, float $seconds): ?array
    {
        $until = microtime(true) + $seconds;
        while (!isset($this->heard[$taskId])) {
            $left = $until - microtime(true);
            if ($this->subscriber === null) {
                if ($left > 0) {
                    usleep((int) ($left * 1e6));
                }
                return null;
            }
            if ($left <= 0) {
                return null;
            }
            $buffered = stream_get_meta_data($this->subscriber)['unread_bytes'] > 0;
            if (!$buffered) {
                $read = [$this->subscriber];
                $none = null;
                $ready = @stream_select($read, $none, $none, (int) $left, (int) (fmod($left, 1.0) * 1e6));
                if ($ready === 0) {
                    return null;
                }
            }
            try {
                $message = $this->read();
            } catch (BrokerUnavailable) {
                $this->drop();
                continue;
            }
            if (is_array($message) && ($message[0] ?? null) === 'message' && is_string($message[2] ?? null)) {
                $record = json_decode($message[2], true);
                if (is_array($record) && is_string($record['task_id'] ?? null)) {
                    $this->heard[$record['task_id']] = $record;
                }
            }
        }
        return $this->heard[$taskId];
    }

    public function forget(string $taskId): void
    {
        unset($this->heard[$taskId]);
    }

    public function close(): void
    {
        $this->drop();
        if ($this->redis !== null) {
            try {
                $this->redis->close();
            } catch (\RedisException) {
            }
            $this->redis = null;
        }
    }

    private function drop(): void
    {
        if ($this->subscriber !== null) {
            fclose($this->subscriber);
            $this->subscriber = null;
        }
    }

    /** @param list<string> $words */
    private function send(array $words): void
    {
        $payload = '*' . count($words) . "\r\n";
        foreach ($words as $word) {
            $payload .= '$' . strlen($word) . "\r\n{$word}\r\n";
        }
        if (@fwrite($this->subscriber, $payload) !== strlen($payload)) {
            throw $this->unavailable('cannot write to the reply channel connection');
        }
    }

    /** One RESP reply from the subscriber socket. */
    private function read(): mixed
    {
        $line = fgets($this->subscriber);
        if ($line === false) {
            throw $this->unavailable('the reply channel connection was lost or timed out');
        }
        $kind = $line[0];
        $rest = substr($line, 1, -2);
        switch ($kind) {
            case '+':
                return $rest;
            case '-':
                throw $this->unavailable("Redis refused: {$rest}");
            case ':':
                return (int) $rest;
            case '$':
                $length = (int) $rest;
                if ($length < 0) {
                    return null;
                }
                $data = '';
                while (strlen($data) < $length + 2) {
                    $chunk = fread($this->subscriber, $length + 2 - strlen($data));
                    if ($chunk === false || $chunk === '') {
                        throw $this->unavailable('the reply channel connection was lost or timed out');
                    }
                    $data .= $chunk;
                }
                return substr($data, 0, $length);
            case '*':
                $items = [];
                for ($i = 0, $count = (int) $rest; $i < $count; $i++) {
                    $items[] = $this->read();
                }
                return $items;
        }
        throw $this->unavailable("unexpected reply from Redis: {$line}");
    }
}

/** One published call: its id, its result, its cancellation. */
final class Handle
{
    /** task_contracts.wire.CANCEL_SCRIPT, put here by the generator: one text for every caller. */
    private const CANCEL_SCRIPT = <<<'LUA'
        @@CANCEL_SCRIPT@@
        LUA;
    private const CANCEL_KEEP_SECONDS = 86400;

    /** @param \Closure(mixed): mixed $decode */
    public function __construct(
        public readonly string $id,
        private readonly Connection $connection,
        private readonly Contract $contract,
        private readonly \Closure $decode,
        private readonly ?float $timeout,
    ) {
    }

    /** Wait for the outcome: at most $timeout seconds, by default the client's or the contract's bound. */
    public function result(?float $timeout = null): mixed
    {
        $bound = $timeout ?? $this->timeout ?? $this->contract->timeout;
        $deadline = microtime(true) + $bound;
        while (true) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                throw new TaskTimeout($this->contract->name, $this->id, $bound);
            }
            $record = $this->connection->hear($this->id, min($left, Connection::FALLBACK_INTERVAL));
            if ($record === null || !self::finished($record)) {
                $stored = $this->connection->command('get', 'celery-task-meta-' . $this->id);
                $record = is_string($stored) ? json_decode($stored, true) : null;
            }
            if (is_array($record) && self::finished($record)) {
                $this->connection->forget($this->id);
                return $this->outcome($record);
            }
            $this->connection->forget($this->id);
        }
    }

    /**
     * Stop the call through the documented keys: "cancelled" (it had not started and never runs),
     * "terminated" (running, interruptible: the worker stops it), "running" (it finishes but never
     * runs again) or "finished" (nothing changed).
     */
    public function cancel(): string
    {
        $record = json_encode([
            'status' => 'REVOKED',
            'result' => ['exc_type' => 'TaskRevokedError', 'exc_message' => ['cancelled'], 'exc_module' => 'celery.exceptions'],
            'traceback' => null,
            'children' => [],
            'date_done' => gmdate('Y-m-d\TH:i:s.000000+00:00'),
            'task_id' => $this->id,
        ]);
        $keys = ['celery-task-meta-' . $this->id, 'task-sdk-running-' . $this->id, 'task-sdk-revoked-' . $this->id];
        $reply = $this->connection->command('eval', self::CANCEL_SCRIPT, [...$keys, 'cancelled', self::CANCEL_KEEP_SECONDS, $record, '0', ''], 3);
        if (!is_array($reply)) {
            throw $this->connection->unavailable('the cancel script failed');
        }
        if ($reply[0] !== 'running') {
            return (string) $reply[0];
        }
        $running = json_decode((string) $reply[1], true);
        return is_array($running) && ($running['interruptible'] ?? false) ? 'terminated' : 'running';
    }

    /** @param array<string, mixed> $record */
    private static function finished(array $record): bool
    {
        return in_array($record['status'] ?? null, ['SUCCESS', 'FAILURE', 'REVOKED'], true);
    }

    /** @param array<string, mixed> $record */
    private function outcome(array $record): mixed
    {
        $name = $this->contract->name;
        if ($record['status'] === 'SUCCESS') {
            try {
                return ($this->decode)($record['result'] ?? null);
            } catch (\TypeError | \UnexpectedValueException $error) {
                throw new ContractMismatch("{$name}: the worker's result does not fit this client's contract: " . $error->getMessage());
            }
        }
        $failure = is_array($record['result'] ?? null) ? $record['result'] : [];
        $message = $failure['exc_message'] ?? '';
        $message = is_array($message) ? implode(' ', array_map('strval', $message)) : (string) $message;
        if ($record['status'] === 'REVOKED') {
            throw new TaskCancelled("{$name} {$this->id} was cancelled ({$message})");
        }
        $type = (string) ($failure['exc_type'] ?? $record['status']);
        if ($type === 'NotRegistered') {
            throw new UnknownTask("no worker serves {$name}: {$message}");
        }
        if ($type === 'ContractMismatch') {
            throw new ContractMismatch("{$name}: {$message}");
        }
        $traceback = $record['traceback'] ?? null;
        throw new TaskFailed($name, $this->id, $type, $message, is_string($traceback) ? $traceback : null);
    }
}

/** The generated client's base: publishing a checked call. */
abstract class Caller
{
    private ?float $timeout = null;
    private Connection $connection;

    public function __construct(string $url)
    {
        $this->connection = new Connection($url);
    }

    /** A client sharing this one's connections whose calls wait at most $seconds instead of each contract's bound. */
    public function withTimeout(float $seconds): static
    {
        $copy = clone $this;
        $copy->timeout = $seconds;
        return $copy;
    }

    public function close(): void
    {
        $this->connection->close();
    }

    /**
     * Publish one call whose arguments the generated code has checked.
     *
     * @param array<string, mixed> $kwargs JSON-ready arguments by name
     * @param \Closure(mixed): mixed $decode the result's JSON to the declared type
     */
    protected function submit(Contract $contract, array $kwargs, \Closure $decode): Handle
    {
        try {
            $body = json_encode(
                [[], (object) $kwargs, ['callbacks' => null, 'errbacks' => null, 'chain' => null, 'chord' => null]],
                JSON_THROW_ON_ERROR | JSON_PRESERVE_ZERO_FRACTION,
            );
        } catch (\JsonException $error) {
            throw new InvalidArguments($contract->name, [$error->getMessage()]);
        }
        $this->connection->listen();
        $id = self::uuid();
        $envelope = json_encode([
            'body' => base64_encode($body),
            'content-encoding' => 'utf-8',
            'content-type' => 'application/json',
            'headers' => [
                'lang' => 'php', 'task' => $contract->name, 'id' => $id, 'root_id' => $id, 'parent_id' => null,
                'group' => null, 'retries' => 0, 'eta' => null, 'expires' => null, 'timelimit' => [null, null],
                'contract_shape' => json_decode($contract->shape),
            ],
            'properties' => [
                'correlation_id' => $id, 'reply_to' => $this->connection->replyChannel, 'delivery_mode' => 2,
                'priority' => 0, 'delivery_info' => ['exchange' => '', 'routing_key' => $contract->queue],
                'body_encoding' => 'base64', 'delivery_tag' => self::uuid(),
            ],
        ], JSON_THROW_ON_ERROR | JSON_PRESERVE_ZERO_FRACTION);
        $this->connection->command('lPush', $contract->queue, $envelope);
        return new Handle($id, $this->connection, $contract, $decode, $this->timeout);
    }

    private static function uuid(): string
    {
        $bytes = random_bytes(16);
        $bytes[6] = chr((ord($bytes[6]) & 0x0f) | 0x40);
        $bytes[8] = chr((ord($bytes[8]) & 0x3f) | 0x80);
        return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($bytes), 4));
    }
}

/** Conversions of a result's JSON to the declared types; a value that does not fit is UnexpectedValueException. */
final class Decode
{
    public static function int(mixed $value): int
    {
        return is_int($value) ? $value : throw new \UnexpectedValueException('expected an integer, got ' . get_debug_type($value));
    }

    public static function float(mixed $value): float
    {
        return is_int($value) || is_float($value) ? (float) $value : throw new \UnexpectedValueException('expected a number, got ' . get_debug_type($value));
    }

    public static function string(mixed $value): string
    {
        return is_string($value) ? $value : throw new \UnexpectedValueException('expected a string, got ' . get_debug_type($value));
    }

    public static function bool(mixed $value): bool
    {
        return is_bool($value) ? $value : throw new \UnexpectedValueException('expected a boolean, got ' . get_debug_type($value));
    }

    /** @return array<mixed> */
    public static function array(mixed $value): array
    {
        return is_array($value) ? $value : throw new \UnexpectedValueException('expected an array or object, got ' . get_debug_type($value));
    }
}

/** Helpers of the generated checks. */
final class Check
{
    /** @param list<string> $problems */
    public static function add(array &$problems, string $path, string $rule, mixed $got): void
    {
        $problems[] = "{$path}: {$rule} (got " . json_encode($got, JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_PRESERVE_ZERO_FRACTION) . ')';
    }

    /** Characters (code points), as JSON Schema counts them, without needing mbstring. */
    public static function length(string $text): int
    {
        return (int) preg_match_all('/./su', $text);
    }
}
