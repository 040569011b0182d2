using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Truestock.Server;

namespace Truestock.Simulation.Demo;

/// <summary>
/// <c>demo</c>: the hub in this process on 127.0.0.1:5080, the four channel emulators on free
/// loopback ports, a retailer declared through the hub's public API, and synthetic store and web
/// traffic, with a live view; on Ctrl+C or after --seconds it stops the traffic, waits for every
/// channel to catch up and checks that each emulator shows the hub's ATS for every SKU.
/// </summary>
internal static class DemoCommand
{
    private const string RunCommand = "dotnet run --project bench/Truestock.Simulation -c Release -- demo";

    /// <summary>How long the channels get to catch up, at the start and after the traffic.</summary>
    private static readonly TimeSpan CatchUpMax = TimeSpan.FromSeconds(120);

    public static async Task<int> RunAsync(string[] args)
    {
        if (args is ["--help"] or ["-h"])
        {
            Console.WriteLine(DemoOptions.Usage);
            return 0;
        }
        var options = DemoOptions.Parse(args, out var error);
        if (options is null)
        {
            Console.Error.WriteLine($"demo: {error}");
            Console.Error.WriteLine(DemoOptions.Usage);
            return 2;
        }

        // First Ctrl+C: stop the traffic and finish properly (convergence check, summary, clean-up).
        // A second one ends the process at once.
        using var stop = new CancellationTokenSource();
        var presses = 0;
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (Interlocked.Increment(ref presses) == 1)
            {
                e.Cancel = true;
                stop.Cancel();
                return;
            }
            // The hub's host also cancels Ctrl+C (to stop itself), so a plain "don't cancel" would not end the process.
            Console.Error.WriteLine("demo: second Ctrl+C, exiting at once (the temp data folder may stay behind).");
            Environment.Exit(130);
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            return await RunAsync(options, stop);
        }
        catch (DemoException e)
        {
            Console.Error.WriteLine();
            Console.Error.WriteLine($"demo: {e.Message}");
            return 1;
        }
        catch (HttpRequestException e)
        {
            Console.Error.WriteLine();
            Console.Error.WriteLine($"demo: the hub stopped answering ({e.Message}). Run the demo again; if it happens again, please report it with this message.");
            return 1;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static async Task<int> RunAsync(DemoOptions options, CancellationTokenSource stop)
    {
        var runId = "demo" + DateTime.UtcNow.ToString("yyMMddHHmmss", CultureInfo.InvariantCulture);
        var tempFolder = options.DataFile is null ? Path.Combine(Path.GetTempPath(), $"truestock-{runId}-{Environment.ProcessId}") : null;
        var dataFile = options.DataFile ?? Path.Combine(tempFolder!, "truestock.db");
        EnsurePortIsFree(options.Port);
        Directory.CreateDirectory(Path.GetDirectoryName(dataFile)!);

        Console.WriteLine("Truestock demo: the hub, four channel EMULATORS (stand-ins for Shopify, Amazon, Walmart and a");
        Console.WriteLine("B2B webhook portal, running in this process: nothing leaves this machine) and synthetic traffic.");
        Console.WriteLine($"Hub data file: {dataFile}" + (tempFolder is null ? " (kept)" : " (a fresh file, deleted at the end; keep one with --data FILE)"));
        try
        {
            await using var emulators = await StartEmulatorsAsync();
            return await RunHubAsync(options, stop, runId, dataFile, emulators);
        }
        finally
        {
            // SQLite pools connections: close them so the temp folder can be deleted (Windows locks open files).
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (tempFolder is null)
            {
                Console.WriteLine($"The hub's data stays in {dataFile}.");
            }
            else
            {
                DeleteTempFolder(tempFolder);
            }
        }
    }

    private static async Task<int> RunHubAsync(DemoOptions options, CancellationTokenSource stop, string runId, string dataFile, ChannelEmulators emulators)
    {
        var hubUrl = new Uri($"http://127.0.0.1:{options.Port}/");
        var hub = await StartHubAsync(options, hubUrl, dataFile, emulators);
        Traffic? traffic = null;
        try
        {
            // The hub's host handles SIGTERM (and Ctrl+C) itself by "stopping the application";
            // take that as the signal to stop the traffic and finish properly, like Ctrl+C.
            using var onHubStopping = hub.Lifetime.ApplicationStopping.Register(stop.Cancel);
            using var client = new HubClient(hubUrl);
            var channels = Catalog.Channels(emulators);
            Console.WriteLine($"Hub listening on {hubUrl}; emulators: Shopify {emulators.Shopify.BaseAddress}, Amazon {emulators.Amazon.BaseAddress}, "
                + $"Walmart {emulators.Walmart.BaseAddress}, webhook {emulators.Webhook.BaseAddress}");

            traffic = new Traffic(client, options, runId);
            var view = new LiveView(client, traffic, options, channels, dataFile);
            try
            {
                await DeclareRetailerAsync(client, emulators, channels, traffic, options.Seed, stop.Token);
                if (!await CatchUpAsync(view, "Publishing the opening stock to every channel", stop.Token))
                {
                    stop.Token.ThrowIfCancellationRequested();
                    Console.WriteLine("Some channels have not caught up yet; starting the traffic anyway (the view shows their backlog).");
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                Console.Error.WriteLine();
                Console.Error.WriteLine("demo: stopped before the traffic started.");
                return 130;
            }

            if (options.Seconds is { } seconds)
            {
                stop.CancelAfter(TimeSpan.FromSeconds(seconds));
            }
            using var viewStop = new CancellationTokenSource();
            var viewTask = view.RunAsync(viewStop.Token);
            await traffic.RunAsync(stop.Token);
            await viewStop.CancelAsync();
            await viewTask;

            // After the traffic: every channel must end up showing the hub's ATS for every SKU.
            Console.WriteLine();
            Console.WriteLine("Traffic stopped. Waiting for every channel to publish its last changes...");
            using var finish = new CancellationTokenSource(CatchUpMax + TimeSpan.FromSeconds(30));
            var caughtUp = Stopwatch.StartNew();
            var drained = await CatchUpAsync(view, "Draining the channels' backlogs", finish.Token);
            var drainSeconds = caughtUp.Elapsed.TotalSeconds;
            var convergence = await Convergence.CheckAsync(client, channels, finish.Token);
            await view.ReadOversellTotalsAsync(finish.Token);
            var final = await view.ReadChannelsAsync(finish.Token);
            Summary.Print(options, traffic, view, final, drained, drainSeconds, convergence);
            return convergence.All(c => c.Converged) && view.OversellsFromReservations + view.OversellsUnclassified == 0 ? 0 : 1;
        }
        finally
        {
            traffic?.Abort();
            await hub.StopAsync();
            await hub.DisposeAsync();
        }
    }

    private static void EnsurePortIsFree(int port)
    {
        try
        {
            var probe = new TcpListener(IPAddress.Loopback, port);
            probe.Start();
            probe.Stop();
        }
        catch (SocketException)
        {
            throw new DemoException($"port {port} on 127.0.0.1 is already in use (is a hub or another demo running?). "
                + $"Stop it, or pick another port: {RunCommand} --port {(port == 65535 ? 5081 : port + 1)}");
        }
    }

    private static async Task<ChannelEmulators> StartEmulatorsAsync()
    {
        try
        {
            return await ChannelEmulators.StartAsync();
        }
        catch (Exception e) when (e is IOException or SocketException or InvalidOperationException)
        {
            throw new DemoException($"the channel emulators did not start ({e.Message}). They listen on free ports of 127.0.0.1: "
                + "check that loopback networking works and that no firewall blocks it.", e);
        }
    }

    private static async Task<WebApplication> StartHubAsync(DemoOptions options, Uri url, string dataFile, ChannelEmulators emulators)
    {
        string[] args =
        [
            "--urls", url.ToString().TrimEnd('/'),
            $"--Truestock:DataPath={dataFile}",
            "--Logging:LogLevel:Default=Warning",
            // The live view owns the console: the hub's own log would scroll it away. Channel
            // errors still show there (from /v1/channels/{id}/sync); --plain keeps the log.
            .. options.Plain || Console.IsOutputRedirected ? Array.Empty<string>() : ["--Logging:Console:LogLevel:Default=None"],
            .. emulators.CredentialArgs(),
        ];
        var app = HubApp.Build(args);
        try
        {
            await app.StartAsync();
        }
        catch (IOException e)
        {
            await app.DisposeAsync();
            throw new DemoException($"the hub could not listen on {url} ({e.Message}). Pick another port: {RunCommand} --port {options.Port + 1}", e);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // E.g. the --data file is in use by another hub, or not writable: the hub's message says which.
            await app.DisposeAsync();
            throw new DemoException($"the hub did not start: {e.Message}", e);
        }
        return app;
    }

    /// <summary>Declares the retailer through the hub's public API, as an integrator would, and receives the opening stock.</summary>
    private static async Task DeclareRetailerAsync(HubClient hub, ChannelEmulators emulators, DemoChannel[] channels, Traffic traffic, int seed, CancellationToken ct)
    {
        Console.WriteLine($"Declaring {Catalog.Locations.Length} locations, {Catalog.Skus.Length} SKUs and {channels.Length} channels through the API...");
        foreach (var location in Catalog.Locations)
        {
            await hub.MustAsync(HttpMethod.Put, $"/v1/locations/{location.Id}", new JsonObject { ["name"] = location.Name, ["type"] = location.Type }, ct);
        }
        // Opening stock, once per data file: a kept --data file already has it, and its channels were
        // published to in an earlier run. The emulators are new, so they start with what the hub
        // computes for each channel now, as if the real channels had kept what they were sent.
        var first = await hub.GetAsync($"/v1/availability/{Catalog.Skus[0]}", ct);
        var stocked = first.Ok && first.Body!["locations"]!.AsArray().Any(l => l!["onHand"]!.GetValue<long>() != 0);
        var shown = new Dictionary<(string Channel, string Sku), long>();
        if (stocked)
        {
            var query = string.Join('&', Catalog.Skus.Select(s => "sku=" + Uri.EscapeDataString(s)));
            foreach (var channel in channels.Where(c => c.Connected))
            {
                var answer = await hub.GetAsync($"/v1/channels/{channel.Id}/availability?{query}", ct);
                foreach (var item in answer.Ok ? answer.Body!["items"]!.AsArray() : [])
                {
                    shown[(channel.Id, item!["sku"]!.GetValue<string>())] = item["available"]!.GetValue<long>();
                }
            }
        }

        // Listings before channels: a channel publishes its full ATS as soon as it is declared.
        emulators.AddListings(Catalog.Skus, (channel, sku) => shown.GetValueOrDefault((channel, sku)));
        foreach (var channel in channels)
        {
            await hub.MustAsync(HttpMethod.Put, $"/v1/channels/{channel.Id}", channel.Declaration(), ct);
        }

        if (!stocked)
        {
            var now = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            var events = Catalog.OpeningStock(new Random(seed)).Select(s => (JsonNode)new JsonObject
            {
                ["eventId"] = $"opening-{s.Sku}-{s.Location}",
                ["type"] = "received",
                ["sku"] = s.Sku,
                ["locationId"] = s.Location,
                ["quantity"] = s.Quantity,
                ["occurredAt"] = now,
                ["source"] = "opening-stock",
            }).ToArray();
            var answer = await hub.MustAsync(HttpMethod.Post, "/v1/events", new JsonObject { ["events"] = new JsonArray(events) }, ct);
            var rejected = answer!["results"]!.AsArray().Count(r => r!["status"]!.GetValue<string>() == "rejected");
            if (rejected > 0)
            {
                throw new DemoException($"the hub rejected {rejected} opening-stock events. This is a bug in the demo; please report it with this message.");
            }
            Console.WriteLine($"Received the opening stock: {events.Length} positions.");
        }
        else
        {
            Console.WriteLine("The data file already holds stock from an earlier run: keeping it (no opening stock).");
        }

        // The tills know their shelves: the stores' on-hand stock, read back from the hub.
        foreach (var sku in Catalog.Skus)
        {
            var answer = await hub.GetAsync($"/v1/availability/{sku}", ct);
            foreach (var position in answer.Body!["locations"]!.AsArray())
            {
                var location = position!["locationId"]!.GetValue<string>();
                if (Catalog.Stores.Contains(location))
                {
                    traffic.StockShelf(location, sku, position["onHand"]!.GetValue<long>());
                }
            }
        }
    }

    /// <summary>Waits until no connected channel has a backlog or a degradation buffer (twice in a row); false on timeout.</summary>
    private static async Task<bool> CatchUpAsync(LiveView view, string what, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var calm = 0;
        var lastLine = "";
        try
        {
            while (clock.Elapsed < CatchUpMax)
            {
                var channels = await view.ReadChannelsAsync(ct);
                var busy = channels.Where(c => c.Value.Pending > 0 || c.Value.Degraded)
                    .Select(c => $"{c.Key} {c.Value.Pending}{(c.Value.Degraded ? " (degraded)" : "")}").ToList();
                calm = busy.Count == 0 ? calm + 1 : 0;
                if (calm >= 2)
                {
                    Console.WriteLine((lastLine.Length > 0 ? "\r" : "") + $"{what}: done in {clock.Elapsed.TotalSeconds:0.0} s.".PadRight(lastLine.Length));
                    return true;
                }
                var line = $"{what}: {clock.Elapsed.TotalSeconds:0} s, waiting for {(busy.Count == 0 ? "a second look" : string.Join(", ", busy))}";
                if (!Console.IsOutputRedirected)
                {
                    Console.Write("\r" + line.PadRight(lastLine.Length));
                    lastLine = line;
                }
                await Task.Delay(500, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Ctrl+C during start-up, or the final wait ran out: report what we have.
        }
        Console.WriteLine();
        return false;
    }

    private static void DeleteTempFolder(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
            Console.WriteLine($"Deleted the demo's data folder {folder}.");
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"demo: could not delete {folder} ({e.Message}); delete it yourself.");
        }
        catch (UnauthorizedAccessException e)
        {
            Console.Error.WriteLine($"demo: could not delete {folder} ({e.Message}); delete it yourself.");
        }
    }
}
