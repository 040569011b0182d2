using System.Diagnostics;
using System.Globalization;
using System.Linq.Expressions;
using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Truestock.Core;
using Truestock.Server;

namespace Truestock.Bench;

/// <summary>Durable operations per second through the hub's own sequencer, without HTTP.</summary>
public sealed record DurableResult(long Operations, double Seconds, LatencySummary Latency, JournalFigures Journal, double ProcessCores)
{
    public double PerSecond => Operations / Seconds;
}

/// <summary>
/// The hub's engine with its real journal, in this process: commands go straight into the
/// sequencer's queue (no HTTP, no JSON parsing of requests) and are answered after their group
/// commit is fsync'd, exactly as for HTTP callers. This isolates "durable, in-process" from
/// "over HTTP". The sequencer and its work items are internal to Truestock.Server, so they are
/// reached by reflection once and then called through compiled delegates; an
/// InternalsVisibleTo for this project would make that unnecessary.
/// </summary>
public static class DurableInProcess
{
    public static async Task<DurableResult> Run(string dataPath, TimeSpan duration, int clients)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(dataPath)!);
        var app = HubApp.Build(["--urls", "http://127.0.0.1:0", $"--Truestock:DataPath={dataPath}", "--Logging:LogLevel:Default=Warning"]);
        await app.StartAsync();
        try
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address) };
            const int skus = 1_000;
            string[] locations = ["D1", "D2", "D3"];
            foreach (var l in locations)
            {
                await Setup.Put(http, $"/v1/locations/{l}", Bodies.Location("warehouse"));
            }
            await Setup.Put(http, "/v1/channels/web", Bodies.Channel(locations));
            await Setup.PostBatches(http, [.. Enumerable.Range(0, skus * locations.Length / 1000).Select(b => (Bodies.Events(Enumerable.Range(b * 1000, 1000).Select(p =>
                (Action<System.Text.StringBuilder>)(sb => Bodies.Event(sb, string.Create(CultureInfo.InvariantCulture, $"d-{p}"), "received",
                    EngineWorld.Sku(p / 3), locations[p % 3], 1_000_000_000, EngineWorld.T0)))), 1000))], 1, "durable seed");

            var engine = new EngineHandle(app.Services);
            var create = engine.Submitter<CreateReservation, ReservationOutcome>("reservation.create",
                static (s, c, now, fx) => s.CreateReservation(c, now, fx), static o => o.Journaled);
            var release = engine.ReleaseSubmitter();
            var metrics = await HubMetricsScrape.Read(http);
            var latencies = new Latencies(clients);
            long operations = 0;
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            await LoadRun.Workers(clients, async w =>
            {
                var n = 0;
                while (watch.Elapsed < duration)
                {
                    var id = string.Create(CultureInfo.InvariantCulture, $"dr-{w}-{n++}");
                    var start = Stopwatch.GetTimestamp();
                    var held = await create(EngineWorld.Reservation(id, EngineWorld.Sku((w * 7919 + n) % skus), 1));
                    latencies.Add(w, Stopwatch.GetTimestamp() - start);
                    if (held.Result != ReservationResult.Created)
                    {
                        throw new InvalidOperationException($"A durable in-process reservation was {held.Result}.");
                    }
                    start = Stopwatch.GetTimestamp();
                    await release(id);
                    latencies.Add(w, Stopwatch.GetTimestamp() - start);
                    Interlocked.Add(ref operations, 2);
                }
            });
            var seconds = watch.Elapsed.TotalSeconds;
            var cores = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds / seconds;
            var journal = HubMetricsScrape.Between(metrics, await HubMetricsScrape.Read(http), seconds);
            return new DurableResult(operations, seconds, latencies.Summarise(), journal, cores);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>The hub's sequencer, found in the host's services, and typed submit functions built once per command kind.</summary>
    private sealed class EngineHandle(IServiceProvider services)
    {
        private static readonly Assembly Server = typeof(HubApp).Assembly;
        private readonly Type _sequencerType = Server.GetType("Truestock.Server.Engine.Sequencer", throwOnError: true)!;
        private readonly Type _workType = Server.GetType("Truestock.Server.Engine.Work`2", throwOnError: true)!;

        /// <summary>
        /// Compiles <c>payload => sequencer.Submit(new Work&lt;TPayload, TResult&gt;(kind, payload, decide, changed))</c>.
        /// </summary>
        public Func<TPayload, Task<TResult>> Submitter<TPayload, TResult>(string kind,
            Func<Shard, TPayload, DateTimeOffset, Effects, TResult> decide, Func<TResult, bool> changed)
        {
            var payload = Expression.Parameter(typeof(TPayload), "payload");
            return Expression.Lambda<Func<TPayload, Task<TResult>>>(Submit(kind, typeof(TPayload), typeof(TResult), payload, Expression.Constant(decide), changed), payload).Compile();
        }

        /// <summary>
        /// Release takes the hub's internal ReservationTransition as its payload (so that the journal
        /// holds what the HTTP handler would write): compiles
        /// <c>id => sequencer.Submit(new Work(kind, new ReservationTransition(id, "bench"), (s, t, now, fx) => s.ReleaseReservation(t.ReservationId, now, t.CorrelationId, fx), o => o.Journaled))</c>.
        /// </summary>
        public Func<string, Task<ReservationOutcome>> ReleaseSubmitter()
        {
            var transition = Server.GetType("Truestock.Server.Engine.ReservationTransition", throwOnError: true)!;
            var s = Expression.Parameter(typeof(Shard), "s");
            var t = Expression.Parameter(transition, "t");
            var now = Expression.Parameter(typeof(DateTimeOffset), "now");
            var fx = Expression.Parameter(typeof(Effects), "fx");
            var decide = Expression.Lambda(
                typeof(Func<,,,,>).MakeGenericType(typeof(Shard), transition, typeof(DateTimeOffset), typeof(Effects), typeof(ReservationOutcome)),
                Expression.Call(s, typeof(Shard).GetMethod(nameof(Shard.ReleaseReservation))!, Expression.Property(t, "ReservationId"), now,
                    Expression.Property(t, "CorrelationId"), fx),
                s, t, now, fx).Compile();
            var id = Expression.Parameter(typeof(string), "id");
            var payload = Expression.New(transition.GetConstructors().Single(), id, Expression.Constant("bench"));
            Func<ReservationOutcome, bool> changed = static o => o.Journaled;
            return Expression.Lambda<Func<string, Task<ReservationOutcome>>>(
                Submit("reservation.release", transition, typeof(ReservationOutcome), payload, Expression.Constant(decide), changed), id).Compile();
        }

        private MethodCallExpression Submit(string kind, Type payloadType, Type resultType, Expression payload, Expression decide, Delegate changed)
        {
            var sequencer = services.GetRequiredService(_sequencerType);
            var work = _workType.MakeGenericType(payloadType, resultType);
            var ctor = work.GetConstructors().Single();
            var submit = _sequencerType.GetMethod("Submit")!.MakeGenericMethod(payloadType, resultType);
            return Expression.Call(Expression.Constant(sequencer, _sequencerType), submit,
                Expression.New(ctor, Expression.Constant(kind, typeof(string)), payload, decide, Expression.Constant(changed)));
        }
    }
}
