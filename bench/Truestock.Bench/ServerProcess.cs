using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Truestock.Bench;

/// <summary>
/// A server under test as a child process on a free loopback port: the hub, or the baseline
/// (this same executable with the baseline-server verb). The harness measures it from outside,
/// through HTTP and /proc, so nothing of the harness runs inside the measured process.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _output = new();
    private readonly ConcurrentQueue<string> _notable = new();
    private readonly Process _process;
    private bool _disposed;
    private bool _lastWasHeader;

    private ServerProcess(string name, Process process, int port)
    {
        Name = name;
        _process = process;
        Port = port;
        BaseAddress = new Uri($"http://127.0.0.1:{port}");
        // A separate small client for control requests, so that they never queue behind the load's connections.
        Control = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 8 })
        {
            BaseAddress = BaseAddress,
            Timeout = TimeSpan.FromMinutes(2),
        };
        StartedAt = Stopwatch.GetTimestamp();
    }

    public string Name { get; }

    public int Port { get; }

    public Uri BaseAddress { get; }

    public HttpClient Control { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Stopwatch timestamp of Process.Start.</summary>
    public long StartedAt { get; }

    /// <summary>The last lines the process printed, for failure messages.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>Starts the hub from its Release build with its data in <paramref name="dataPath"/>.</summary>
    public static ServerProcess StartHub(string hubDll, string dataPath, params string[] extra)
    {
        var port = FreePort();
        var args = new List<string>
        {
            hubDll, "--urls", $"http://127.0.0.1:{port}", $"--Truestock:DataPath={dataPath}",
            // The hub's own progress (recovery, snapshots) is useful in the output; request logs are not.
            "--Logging:LogLevel:Default=Information", "--Logging:LogLevel:Microsoft=Warning",
        };
        args.AddRange(extra);
        return Start("hub", "dotnet", args, port, null);
    }

    /// <summary>Starts the baseline server (this executable, verb baseline-server) on a SQLite file.</summary>
    public static ServerProcess StartBaseline(string dataPath) => StartBaselineOn("--data", dataPath);

    /// <summary>Starts the baseline server on a PostgreSQL database (an Npgsql connection string).</summary>
    public static ServerProcess StartPostgresBaseline(string connectionString) => StartBaselineOn("--postgres", connectionString);

    private static ServerProcess StartBaselineOn(string storeOption, string store)
    {
        var port = FreePort();
        var self = typeof(ServerProcess).Assembly.Location;
        var env = new Dictionary<string, string>
        {
            // The hub runs with the web SDK's default, server GC; the baseline gets the same, so the
            // comparison is between designs, not GC modes.
            ["DOTNET_gcServer"] = "1",
        };
        return Start("baseline", "dotnet", [self, "baseline-server", "--port", port.ToString(CultureInfo.InvariantCulture), storeOption, store], port, env);
    }

    private static ServerProcess Start(string name, string file, IEnumerable<string> args, int port, Dictionary<string, string>? env)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        foreach (var (k, v) in env ?? [])
        {
            info.Environment[k] = v;
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {name}.");
        var server = new ServerProcess(name, process, port);
        process.OutputDataReceived += (_, e) => server.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => server.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return server;
    }

    /// <summary>
    /// Polls <paramref name="path"/> until it answers 200; returns the time since the process was
    /// started. Fails when the process exits or <paramref name="limit"/> passes.
    /// </summary>
    public async Task<TimeSpan> WaitReady(string path, TimeSpan limit)
    {
        var deadline = Stopwatch.StartNew();
        using var probe = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"The {Name} exited with code {_process.ExitCode} before it was ready:\n{Output}");
            }
            try
            {
                using var response = await probe.GetAsync(path);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return Stopwatch.GetElapsedTime(StartedAt);
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }
            if (deadline.Elapsed > limit)
            {
                throw new TimeoutException($"The {Name} was not ready on {path} within {limit.TotalSeconds:F0} s:\n{Output}");
            }
            await Task.Delay(10);
        }
    }

    /// <summary>
    /// Sends SIGTERM and waits for the process to exit: the hub then drains its loop and writes a
    /// snapshot. Returns how long the shutdown took. Falls back to SIGKILL after <paramref name="limit"/>.
    /// </summary>
    public async Task<TimeSpan> StopGracefully(TimeSpan limit)
    {
        var watch = Stopwatch.StartNew();
        if (_process.HasExited)
        {
            return TimeSpan.Zero;
        }
        // .NET offers only SIGKILL (Process.Kill); kill(1) sends SIGTERM to exactly this pid.
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill!.WaitForExitAsync();
        }
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            Log.Line($"  the {Name} did not stop within {limit.TotalSeconds:F0} s of SIGTERM; killing it.");
            Kill();
        }
        return watch.Elapsed;
    }

    /// <summary>SIGKILL: no shutdown hook, no final snapshot.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Scenarios dispose a server when they are done with it, and again on the way out of a using.
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        Control.Dispose();
        if (!_process.HasExited)
        {
            await StopGracefully(TimeSpan.FromSeconds(60));
        }
        _process.Dispose();
    }

    /// <summary>
    /// The hub's lines about snapshots, recovery, warnings and errors printed since the last call:
    /// a snapshot taken during a scenario explains a latency spike in it.
    /// </summary>
    public List<string> TakeNotable()
    {
        var lines = new List<string>();
        while (_notable.TryDequeue(out var line))
        {
            lines.Add(line);
        }
        return lines;
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }
        // The console logger prints "level: category" on one line and the message on the next.
        if (_lastWasHeader)
        {
            _notable.Enqueue(line.Trim());
        }
        _lastWasHeader = line.StartsWith("warn:", StringComparison.Ordinal) || line.StartsWith("fail:", StringComparison.Ordinal)
            || line.StartsWith("crit:", StringComparison.Ordinal) || line.StartsWith("info: Truestock.Server.Engine", StringComparison.Ordinal);
        _output.Enqueue(line);
        while (_output.Count > 200 && _output.TryDequeue(out _))
        {
        }
    }

    /// <summary>A loopback port nothing listens on now (the OS's pick for port 0).</summary>
    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
