<?php

declare(strict_types=1);

// The generated PHP caller against real workers (tests/callers/test_php.py runs this with phpunit,
// bootstrapped with the generated autoload.php).

use PHPUnit\Framework\TestCase;
use Tasks\BrokerUnavailable;
use Tasks\Client;
use Tasks\ContractMismatch;
use Tasks\Described;
use Tasks\InvalidArguments;
use Tasks\Point;
use Tasks\Stats;
use Tasks\TaskCancelled;
use Tasks\TaskFailed;
use Tasks\TaskTimeout;
use Tasks\UnknownTask;

final class CallersTest extends TestCase
{
    private static function client(string $env): Client
    {
        return new Client((string) getenv($env));
    }

    public function testAdd(): void
    {
        $this->assertSame(11, self::client('CALLERS_MAIN_URL')->mathAdd(4, 7));
    }

    public function testMulByNamedArguments(): void
    {
        $this->assertSame(42, self::client('CALLERS_MAIN_URL')->mathMul(y: 7, x: 6));
    }

    public function testStatsIsTyped(): void
    {
        $stats = self::client('CALLERS_MAIN_URL')->mathStats([1.0, 2, 3.5]);
        $this->assertInstanceOf(Stats::class, $stats);
        $this->assertSame(3, $stats->count);
        $this->assertSame(6.5, $stats->total);
    }

    public function testModelsOptionalsAndDefaults(): void
    {
        $client = self::client('CALLERS_MAIN_URL');
        $got = $client->callersDescribe(2, 'cm', 'ab', [new Point(1.0, 2.0, 'p'), new Point(3.0, 4.0)], ['on' => true], loud: true);
        $this->assertInstanceOf(Described::class, $got);
        $this->assertSame('2 CM AB 2 POINTS', $got->text);
        $this->assertNull($got->scale);
        $this->assertSame('p', $got->points[0]->label);
        $this->assertNull($got->points[1]->label);
        $this->assertSame(['on' => true], $got->flags);
        $this->assertSame('0 in x 0 points', $client->callersDescribe(0, 'in', 'x', [], [])->text);
    }

    public function testInvalidCallPublishesNothing(): void
    {
        foreach (['CALLERS_QUIET_URL', 'CALLERS_DOWN_URL'] as $env) {
            try {
                self::client($env)->callersDescribe(101, 'mm', 'AB', ['not a point'], ['on' => 'yes']);
                $this->fail("{$env}: no InvalidArguments");
            } catch (InvalidArguments $error) {
                $text = implode("\n", $error->problems);
                foreach (['count: must be <= 100', 'unit: must be one of', 'tag: must match', 'points[0]: must be Point', 'flags[on]: must be bool'] as $part) {
                    $this->assertStringContainsString($part, $text);
                }
            }
        }
    }

    public function testFailureNamesTheRemoteError(): void
    {
        try {
            self::client('CALLERS_MAIN_URL')->mathDiv(1.0, 0.0);
            $this->fail('no TaskFailed');
        } catch (TaskFailed $error) {
            $this->assertSame('ZeroDivisionError', $error->remoteType);
        }
    }

    public function testUnservedNameIsUnknownTask(): void
    {
        $this->expectException(UnknownTask::class);
        self::client('CALLERS_MAIN_URL')->callersUnserved(1);
    }

    public function testNoWorkerTimesOutWithinTheBound(): void
    {
        $start = microtime(true);
        try {
            self::client('CALLERS_MAIN_URL')->callersIdle(1); // its bound is 1 s
            $this->fail('no TaskTimeout');
        } catch (TaskTimeout) {
            $elapsed = microtime(true) - $start;
            $this->assertGreaterThan(0.9, $elapsed);
            $this->assertLessThan(2.0, $elapsed);
        }
        $start = microtime(true);
        try {
            self::client('CALLERS_QUIET_URL')->withTimeout(0.3)->mathAdd(1, 2); // the bound, overridden
            $this->fail('no TaskTimeout');
        } catch (TaskTimeout) {
            $this->assertLessThan(1.3, microtime(true) - $start);
        }
    }

    public function testRedisDownIsBrokerUnavailable(): void
    {
        $start = microtime(true);
        try {
            self::client('CALLERS_DOWN_URL')->mathAdd(1, 2);
            $this->fail('no BrokerUnavailable');
        } catch (BrokerUnavailable) {
            $this->assertLessThan(2.5, microtime(true) - $start);
        }
    }

    public function testEvolvedWorkerAnswersTheOlderCaller(): void
    {
        $this->assertSame(111, self::client('CALLERS_EVOLVED_URL')->mathAdd(4, 7)); // the worker's add gained z = 100
    }

    public function testBreakingChangesAreContractMismatch(): void
    {
        $client = self::client('CALLERS_EVOLVED_URL');
        foreach ([static fn () => $client->mathMul(6, 7), static fn () => $client->mathStats([1.0])] as $call) {
            try {
                $call(); // the worker's mul requires z; its stats has no total
                $this->fail('no ContractMismatch');
            } catch (ContractMismatch $error) {
                $this->assertStringContainsString('math.', $error->getMessage());
            }
        }
    }

    public function testCancelBeforeStart(): void
    {
        $handle = self::client('CALLERS_MAIN_URL')->submitCallersIdle(1);
        $this->assertSame('cancelled', $handle->cancel());
        $this->expectException(TaskCancelled::class);
        $handle->result();
    }

    public function testTheTypeCheckerRefusesAStringForAnInt(): void
    {
        $this->expectException(\TypeError::class);
        self::client('CALLERS_DOWN_URL')->mathAdd('a', 7); // @phpstan-ignore-line: the point of the test
    }
}
