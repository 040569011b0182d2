using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit.Abstractions;

namespace Truestock.Server.Tests;

/// <summary>
/// One writer per PostgreSQL database, a hot standby that takes over, and a database restart
/// under load. These need the PostgreSQL server that ./test.sh starts, whatever the backend of
/// the run, and never skip.
/// </summary>
[Trait("Category", "Postgres")]
[Collection(Disruptive.Name)]
public sealed class PostgresFailoverTests(ITestOutputHelper output)
{
    private const int EventsPerRequest = 4;

    /// <summary>Writers that send numbered event batches to whichever hub is current, recording what was acknowledged.</summary>
    private sealed class Load
    {
        private int _sent;

        public ConcurrentBag<int> Acknowledged { get; } = [];

        public Func<HttpClient> Target { get; set; } = null!;

        public Task Run(int writers, CancellationToken stop) => Task.WhenAll(Enumerable.Range(0, writers).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var request = Interlocked.Increment(ref _sent);
                var events = Enumerable.Range(0, EventsPerRequest)
                    .Select(k => HubServer.Event("received", "F", "WH1", 1, eventId: $"f-{request}-{k}")).ToArray();
                try
                {
                    var response = await Target().PostAsJsonAsync("/v1/events", new { events }, stop);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        Acknowledged.Add(request);
                    }
                    else
                    {
                        await Task.Delay(20, stop);
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or OperationCanceledException)
                {
                    // The hub went away or was busy failing over: this request may or may not be applied.
                    await Task.Delay(20, CancellationToken.None);
                }
            }
        })));
    }

    private static async Task Declare(HttpClient client)
    {
        (await client.PutAsJsonAsync("/v1/locations/WH1", new { name = "Warehouse", type = "warehouse" })).EnsureSuccessStatusCode();
        (await client.PutAsJsonAsync("/v1/channels/web", new { name = "Web", locations = new[] { "WH1" } })).EnsureSuccessStatusCode();
    }

    /// <summary>Every acknowledged request is in the ledger, whole, exactly once, and onHand agrees.</summary>
    private static async Task AssertExactlyOnce(HttpClient client, IEnumerable<int> acknowledged)
    {
        var ids = (await HubServer.WholeLedger(client, "F", "WH1")).Select(e => e.GetProperty("eventId").GetString()!).ToList();

        Assert.Equal(ids.Count, ids.Distinct().Count());
        var present = ids.ToHashSet();
        foreach (var request in acknowledged)
        {
            for (var k = 0; k < EventsPerRequest; k++)
            {
                Assert.Contains($"f-{request}-{k}", present);
            }
        }
        Assert.All(ids.GroupBy(id => id[..id.LastIndexOf('-')]), g => Assert.Equal(EventsPerRequest, g.Count()));
        var view = JsonDocument.Parse(await client.GetStringAsync("/v1/availability/F")).RootElement;
        Assert.Equal(ids.Count, view.GetProperty("locations")[0].GetProperty("onHand").GetInt64());
    }

    [Fact]
    public async Task a_second_hub_on_the_same_database_is_a_standby_that_serves_reads_and_refuses_writes()
    {
        await using var storage = await TestStorage.Create("postgres");
        using var writer = new HubProcess(storage.HubArgs);
        await writer.Start();
        await Declare(writer.Client);
        using var standby = new HubProcess(storage.HubArgs);
        await standby.Start(asStandby: true);

        var write = await writer.Client.PostAsJsonAsync("/v1/events", new { events = new[] { HubServer.Event("received", "F", "WH1", 3) } });
        write.EnsureSuccessStatusCode();

        // The standby replays the journal as it grows: the write shows up there within a few polls.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        long onHand;
        do
        {
            await Task.Delay(50);
            var view = JsonDocument.Parse(await standby.Client.GetStringAsync("/v1/availability/F")).RootElement;
            onHand = view.GetProperty("locations")[0].GetProperty("onHand").GetInt64();
        }
        while (onHand != 3 && DateTime.UtcNow < deadline);
        Assert.Equal(3, onHand);

        var refused = await standby.Client.PostAsJsonAsync("/v1/events", new { events = new[] { HubServer.Event("received", "F", "WH1", 1) } });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Contains("standby", await refused.Content.ReadAsStringAsync());
        var ready = await standby.Client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        var body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("standby", body.GetProperty("role").GetString());
        Assert.True(body.GetProperty("stalenessSeconds").GetDouble() < 5);
        Assert.Contains("truestock_engine_role{role=\"standby\"} 1", await standby.Client.GetStringAsync("/metrics"));
    }

    [Fact]
    public async Task the_standby_takes_over_when_the_writer_is_killed_and_every_acknowledged_write_is_there_exactly_once()
    {
        await using var storage = await TestStorage.Create("postgres");
        using var first = new HubProcess(storage.HubArgs);
        await first.Start();
        await Declare(first.Client);
        using var second = new HubProcess(storage.HubArgs);
        await second.Start(asStandby: true);

        var load = new Load { Target = () => first.Client };
        using var stop = new CancellationTokenSource();
        var running = load.Run(6, stop.Token);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (load.Acknowledged.Count < 150 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }
        var acknowledgedBeforeKill = load.Acknowledged.Count;

        first.Kill();
        var watch = Stopwatch.StartNew();
        load.Target = () => second.Client;
        var failover = await second.WaitForRole("writer", TimeSpan.FromSeconds(30));
        output.WriteLine($"Failover took {failover.TotalMilliseconds:F0} ms after SIGKILL ({watch.ElapsedMilliseconds} ms measured by the test).");
        var before = load.Acknowledged.Count;
        deadline = DateTime.UtcNow.AddSeconds(30);
        while (load.Acknowledged.Count < before + 100 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }
        await stop.CancelAsync();
        await running;

        Assert.True(acknowledgedBeforeKill >= 50, $"Only {acknowledgedBeforeKill} requests were acknowledged before the kill.");
        Assert.True(load.Acknowledged.Count >= before + 50, "The new writer acknowledged too few writes after taking over.");
        await AssertExactlyOnce(second.Client, load.Acknowledged);
    }

    [Fact]
    public async Task a_database_restart_under_load_loses_nothing_acknowledged_and_the_writer_resumes()
    {
        var pgBin = Environment.GetEnvironmentVariable("TRUESTOCK_TEST_PGBIN")
            ?? throw new InvalidOperationException("TRUESTOCK_TEST_PGBIN is not set: run ./test.sh, which starts PostgreSQL.");
        var pgData = Environment.GetEnvironmentVariable("TRUESTOCK_TEST_PGDATA")
            ?? throw new InvalidOperationException("TRUESTOCK_TEST_PGDATA is not set: run ./test.sh, which starts PostgreSQL.");
        await using var storage = await TestStorage.Create("postgres");
        using var hub = new HubProcess(storage.HubArgs);
        await hub.Start();
        await Declare(hub.Client);

        var load = new Load { Target = () => hub.Client };
        using var stop = new CancellationTokenSource();
        var running = load.Run(4, stop.Token);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (load.Acknowledged.Count < 100 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        RestartPostgres(pgBin, pgData);
        await hub.WaitForRole("writer", TimeSpan.FromSeconds(60));
        var before = load.Acknowledged.Count;
        deadline = DateTime.UtcNow.AddSeconds(30);
        while (load.Acknowledged.Count < before + 100 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }
        await stop.CancelAsync();
        await running;

        Assert.True(load.Acknowledged.Count >= before + 50, $"The hub acknowledged too few writes after the restart:\n{hub.Output}");
        await AssertExactlyOnce(hub.Client, load.Acknowledged);
    }

    private static void RestartPostgres(string pgBin, string pgData)
    {
        // pg_ctl restart keeps the options the server was started with (postmaster.opts).
        var asRoot = Environment.UserName == "root";
        // The server's output goes to its log file: a pipe to this test would be held open by the
        // restarted server for ever.
        var info = new ProcessStartInfo(asRoot ? "runuser" : Path.Combine(pgBin, "pg_ctl")) { UseShellExecute = false };
        if (asRoot)
        {
            foreach (var a in new[] { "-u", "postgres", "--", Path.Combine(pgBin, "pg_ctl") })
            {
                info.ArgumentList.Add(a);
            }
        }
        foreach (var a in new[] { "-D", pgData, "-l", Path.Combine(pgData, "server.log"), "-m", "fast", "-w", "-t", "60", "restart" })
        {
            info.ArgumentList.Add(a);
        }
        using var p = Process.Start(info)!;
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(90)), "pg_ctl restart did not finish within 90 s.");
        Assert.True(p.ExitCode == 0, $"pg_ctl restart failed with exit code {p.ExitCode}; see {pgData}/server.log.");
    }
}
