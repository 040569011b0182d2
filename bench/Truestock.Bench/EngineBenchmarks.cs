using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Truestock.Core;

namespace Truestock.Bench;

/// <summary>
/// Reservation decisions on one shard: a hold of one unit, then its release, on 3,000 positions.
/// Each iteration uses fresh reservation ids (they are remembered until pruned); between
/// iterations, outside the measurement, the shard expires its queue and forgets ended
/// reservations, so that the ids can be used again and memory stays flat.
/// </summary>
[MemoryDiagnoser(displayGenColumns: false)]
[InvocationCount(Invocations, 1)]
public class ReservationDecisions
{
    public const int Pairs = 4096;
    public const int Invocations = 16;

    private readonly Effects _fx = new();
    private Shard _shard = null!;
    private CreateReservation[] _commands = null!;
    private DateTimeOffset _now;
    private int _invocation;

    [GlobalSetup]
    public void Setup()
    {
        _shard = EngineWorld.Create(1_000, EngineWorld.Locations(3), stock: 1_000_000_000);
        _commands = Enumerable.Range(0, Pairs * Invocations)
            .Select(i => EngineWorld.Reservation(string.Create(CultureInfo.InvariantCulture, $"r{i}"), EngineWorld.Sku(i % 1_000), 1))
            .ToArray();
        _now = EngineWorld.T0.AddDays(10);
    }

    [IterationSetup]
    public void NextIteration()
    {
        _now = _now.AddDays(2);
        _shard.ExpireDue(_now, _fx);
        _shard.Prune(_now, _fx);
        _fx.Clear();
        _invocation = 0;
    }

    [Benchmark(OperationsPerInvoke = 2 * Pairs, Description = "reservation decision (create + release, per decision)")]
    public void CreateThenRelease()
    {
        var from = (_invocation++ % Invocations) * Pairs;
        for (var i = from; i < from + Pairs; i++)
        {
            _shard.CreateReservation(_commands[i], _now, _fx);
            _shard.ReleaseReservation(_commands[i].ReservationId, _now, "bench", _fx);
        }
        // The host clears the effects buffer after each group commit; one invocation stands for one batch.
        _fx.Clear();
    }
}

/// <summary>
/// Event decisions on existing positions: received and sold, one unit, on 4,096 positions. Every
/// iteration starts with a count per position (outside the measurement), so each position
/// remembers at most 16 movements since its count, as it would between daily stock takes.
/// </summary>
[MemoryDiagnoser(displayGenColumns: false)]
[InvocationCount(Invocations, 1)]
public class EventDecisions
{
    public const int Positions = 4096;
    public const int Invocations = 16;

    private readonly Effects _fx = new();
    private Shard _shard = null!;
    private string[] _locations = null!;
    private StockEvent[] _events = null!;
    private string[] _ids = null!;
    private DateTimeOffset _base;
    private DateTimeOffset _now;
    private int _iteration;
    private int _invocation;

    [GlobalSetup]
    public void Setup()
    {
        _locations = EngineWorld.Locations(2);
        _shard = EngineWorld.Create(Positions / 2, _locations, stock: 1_000_000);
        _ids = Enumerable.Range(0, Positions * Invocations).Select(i => string.Create(CultureInfo.InvariantCulture, $"e{i}")).ToArray();
        _events = new StockEvent[_ids.Length];
        _base = EngineWorld.T0.AddDays(10);
    }

    [IterationSetup]
    public void NextIteration()
    {
        _iteration++;
        _base = _base.AddDays(2);
        _now = _base.AddHours(1);
        // Forget the previous iteration's ids (recorded more than the one-day retention ago).
        _shard.Prune(_base, _fx);
        for (var p = 0; p < Positions; p++)
        {
            _shard.ApplyEvent(EngineWorld.Event(string.Create(CultureInfo.InvariantCulture, $"c{_iteration}-{p}"), EventType.Counted,
                EngineWorld.Sku(p / 2), _locations[p % 2], 1_000_000, _base), _base, _fx);
        }
        _fx.Clear();
        for (var i = 0; i < _events.Length; i++)
        {
            var p = i % Positions;
            _events[i] = EngineWorld.Event(_ids[i], (i / Positions) % 2 == 0 ? EventType.Received : EventType.Sold,
                EngineWorld.Sku(p / 2), _locations[p % 2], 1, _base.AddMilliseconds(i + 1));
        }
        _invocation = 0;
    }

    [Benchmark(OperationsPerInvoke = Positions, Description = "event decision (received / sold on an existing position)")]
    public void ReceivedOrSold()
    {
        var from = (_invocation++ % Invocations) * Positions;
        for (var i = from; i < from + Positions; i++)
        {
            _shard.ApplyEvent(_events[i], _now, _fx);
        }
        _fx.Clear();
    }
}

/// <summary>Per-decision cost and allocation of one BenchmarkDotNet case.</summary>
public sealed record MicroResult(string Name, double NanosecondsPerDecision, double? BytesPerDecision)
{
    public double DecisionsPerSecond => 1e9 / NanosecondsPerDecision;
}

/// <summary>Runs the micro-benchmarks in process with a short job and reads their results back.</summary>
public static class EngineBenchmarks
{
    public static List<MicroResult> Run(string artifacts, bool quick)
    {
        var folder = Path.Combine(artifacts, "BenchmarkDotNet");
        Directory.CreateDirectory(folder);
        using var logFile = new StreamWriter(Path.Combine(folder, "engine-benchmarks.log"));
        // In process: no separate build of a benchmark project, which would take longer than the measurements themselves.
        var job = Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithLaunchCount(1)
            .WithWarmupCount(3)
            .WithIterationCount(quick ? 5 : 15)
            .WithId("short-in-process");
        var config = ManualConfig.CreateEmpty()
            .AddJob(job)
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .AddLogger(new StreamLogger(logFile))
            .AddExporter(MarkdownExporter.GitHub, JsonExporter.Full)
            .WithArtifactsPath(folder);
        var results = new List<MicroResult>();
        foreach (var type in new[] { typeof(ReservationDecisions), typeof(EventDecisions) })
        {
            Log.Line($"engine: BenchmarkDotNet {type.Name} (log in {Path.Combine(folder, "engine-benchmarks.log")})");
            var summary = BenchmarkRunner.Run(type, config);
            foreach (var r in summary.Reports)
            {
                if (r.ResultStatistics is null)
                {
                    Log.Line($"engine: {r.BenchmarkCase.Descriptor.WorkloadMethodDisplayInfo} produced no result; see the log.");
                    continue;
                }
                var bytes = r.GcStats.GetBytesAllocatedPerOperation(r.BenchmarkCase);
                results.Add(new MicroResult(r.BenchmarkCase.Descriptor.WorkloadMethodDisplayInfo.Trim('\''), r.ResultStatistics.Mean, bytes));
            }
        }
        return results;
    }
}
