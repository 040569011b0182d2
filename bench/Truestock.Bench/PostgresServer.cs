using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Truestock.Bench;

/// <summary>
/// The PostgreSQL server of the http-postgres section: a throwaway one that scripts/postgres.sh
/// starts on a free loopback port with its data in the scratch folder (and stops again), or an
/// existing one named by the environment variable <see cref="ServerVariable"/>.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    /// <summary>An Npgsql connection string of an existing server to use instead of starting one (its user must be allowed to create databases).</summary>
    public const string ServerVariable = "TRUESTOCK_BENCH_POSTGRES";

    /// <summary>How long the script may take: on a fresh machine it installs PostgreSQL first.</summary>
    private static readonly TimeSpan ScriptLimit = TimeSpan.FromMinutes(10);

    private readonly string? _script;
    private readonly string? _dataDir;
    private readonly int _port;
    private readonly List<string> _databases = [];
    private readonly ConsoleCancelEventHandler? _onCancel;
    private bool _stopped;

    private PostgresServer(string adminConnectionString, string? script, string? dataDir, int port)
    {
        AdminConnectionString = adminConnectionString;
        _script = script;
        _dataDir = dataDir;
        _port = port;
        if (Owned)
        {
            // Ctrl+C ends the harness without running its finally blocks: stop the server it started anyway.
            _onCancel = (_, _) => Stop();
            Console.CancelKeyPress += _onCancel;
        }
    }

    /// <summary>Connection string of the maintenance database, for creating the others.</summary>
    public string AdminConnectionString { get; }

    /// <summary>True when this harness started the server (and stops it); false for <see cref="ServerVariable"/>.</summary>
    public bool Owned => _dataDir is not null;

    /// <summary>The server's version, as <c>SHOW server_version</c> gives it.</summary>
    public string Version { get; private set; } = "";

    /// <summary>The settings that decide what a commit costs, as the server reports them.</summary>
    public Dictionary<string, string> Settings { get; } = new(StringComparer.Ordinal);

    /// <summary>The postmaster's process id when it runs on this machine, else null (no database CPU figures).</summary>
    public int? PostmasterPid { get; private set; }

    /// <summary>
    /// Starts a throwaway server in <paramref name="dataDir"/>, or connects to the one in
    /// <see cref="ServerVariable"/>. Returns the reason instead when PostgreSQL cannot be started
    /// here (the script exits 2: not installed and not root, or initdb failed).
    /// </summary>
    public static async Task<(PostgresServer? Server, string? Unavailable)> Start(string root, string dataDir)
    {
        PostgresServer server;
        if (Environment.GetEnvironmentVariable(ServerVariable) is { Length: > 0 } existing)
        {
            Log.Line($"postgres: using the server of {ServerVariable}");
            server = new PostgresServer(existing, null, null, 0);
        }
        else
        {
            var port = ServerProcess.FreePort();
            var script = Path.Combine(root, "scripts", "postgres.sh");
            var (code, said) = await RunScript(script, "start", port, dataDir);
            if (code == 2)
            {
                return (null, said.LastOrDefault(l => l.Length > 0) ?? "scripts/postgres.sh could not start PostgreSQL.");
            }
            if (code != 0)
            {
                throw new InvalidOperationException($"scripts/postgres.sh start exited with {code}:\n{string.Join('\n', said)}");
            }
            server = new PostgresServer($"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres", script, dataDir, port);
        }
        try
        {
            await server.Describe();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return (server, null);
    }

    /// <summary>Creates an empty database (dropping one of the same name left by an earlier run) and returns its connection string.</summary>
    public async Task<string> CreateDatabase(string name)
    {
        await using (var c = new NpgsqlConnection(AdminConnectionString))
        {
            await c.OpenAsync();
            foreach (var sql in new[] { $"DROP DATABASE IF EXISTS {name}", $"CREATE DATABASE {name}" })
            {
                await using var cmd = c.CreateCommand();
                cmd.CommandText = sql;
                await cmd.ExecuteNonQueryAsync();
            }
        }
        _databases.Add(name);
        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ToString();
    }

    /// <summary>
    /// CPU seconds used so far by the postmaster and every process it started (backends, WAL
    /// writer, checkpointer, autovacuum): the live children's own time, plus the postmaster's own
    /// and its reaped children's (cutime, cstime), so a backend that has exited still counts.
    /// NaN when the postmaster is not on this machine.
    /// </summary>
    public double CpuSeconds()
    {
        if (PostmasterPid is not { } postmaster)
        {
            return double.NaN;
        }
        long ticks = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || StatFields(pid) is not { } f)
            {
                continue;
            }
            // After the command name: state, ppid, …; utime, stime, cutime, cstime are fields 14–17 of proc(5).
            if (pid == postmaster)
            {
                ticks += Field(f, 11) + Field(f, 12) + Field(f, 13) + Field(f, 14);
            }
            else if (Field(f, 1) == postmaster)
            {
                ticks += Field(f, 11) + Field(f, 12);
            }
        }
        return ticks / ProcStats.ClockTicksPerSecond;
    }

    public async ValueTask DisposeAsync()
    {
        if (!Owned)
        {
            // An existing server is someone else's: leave it as it was, without the bench's databases.
            await DropDatabases();
            return;
        }
        Console.CancelKeyPress -= _onCancel;
        var (code, said) = await RunScript(_script!, "stop", _port, _dataDir!);
        _stopped = true;
        if (code != 0)
        {
            Log.Line($"postgres: scripts/postgres.sh stop exited with {code}: {string.Join(' ', said)}");
        }
    }

    private async Task Describe()
    {
        await using var c = new NpgsqlConnection(AdminConnectionString);
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit'),
                   current_setting('shared_buffers'), current_setting('max_connections'), pg_backend_pid()
            """;
        int backend;
        await using (var r = await cmd.ExecuteReaderAsync())
        {
            await r.ReadAsync();
            Version = r.GetString(0);
            Settings["fsync"] = r.GetString(1);
            Settings["synchronous_commit"] = r.GetString(2);
            Settings["shared_buffers"] = r.GetString(3);
            Settings["max_connections"] = r.GetString(4);
            backend = r.GetInt32(5);
        }
        PostmasterPid = Owned ? ReadPostmasterPid() : LocalPostmaster(backend);
        Log.Line($"postgres: PostgreSQL {Version}, {string.Join(", ", Settings.Select(kv => $"{kv.Key}={kv.Value}"))}"
            + (PostmasterPid is { } pid ? $"; postmaster pid {pid}" : "; not on this machine, so its CPU is not measured"));
    }

    /// <summary>The first line of postmaster.pid in the data folder.</summary>
    private int? ReadPostmasterPid()
    {
        try
        {
            var first = File.ReadLines(Path.Combine(_dataDir!, "postmaster.pid")).FirstOrDefault();
            return int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The parent of our backend process, when that backend is a postgres process on this machine
    /// (a server elsewhere, or in a container, has pids that mean nothing here).
    /// </summary>
    private static int? LocalPostmaster(int backend)
    {
        if (StatFields(backend) is not { } f || !IsPostgres(backend))
        {
            return null;
        }
        var parent = (int)Field(f, 1);
        return IsPostgres(parent) ? parent : null;
    }

    private static bool IsPostgres(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim() is "postgres" or "postmaster";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The fields of /proc/pid/stat after the command name, or null when the process is gone.</summary>
    private static string[]? StatFields(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static long Field(string[] fields, int index) =>
        index < fields.Length && long.TryParse(fields[index], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : 0;

    private async Task DropDatabases()
    {
        try
        {
            await using var c = new NpgsqlConnection(AdminConnectionString);
            await c.OpenAsync();
            foreach (var name in _databases)
            {
                await using var cmd = c.CreateCommand();
                cmd.CommandText = $"DROP DATABASE IF EXISTS {name}";
                await cmd.ExecuteNonQueryAsync();
            }
        }
        catch (NpgsqlException ex)
        {
            Log.Line($"postgres: could not drop the bench's databases ({string.Join(", ", _databases)}): {ex.Message}");
        }
    }

    /// <summary>Stops the server synchronously, for Ctrl+C.</summary>
    private void Stop()
    {
        if (_stopped)
        {
            return;
        }
        _stopped = true;
        using var stop = Process.Start(new ProcessStartInfo("bash") { ArgumentList = { _script!, "stop", Fmt.I(_port), _dataDir! }, UseShellExecute = false });
        stop?.WaitForExit(TimeSpan.FromMinutes(1));
    }

    /// <summary>Runs scripts/postgres.sh and returns its exit code and what it printed; its progress lines are logged as they come.</summary>
    private static async Task<(int Code, List<string> Said)> RunScript(string script, string action, int port, string dataDir)
    {
        var info = new ProcessStartInfo("bash")
        {
            ArgumentList = { script, action, Fmt.I(port), dataDir },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(info) ?? throw new InvalidOperationException("Could not run bash.");
        var said = new List<string>();
        void Keep(string? line)
        {
            if (line is null)
            {
                return;
            }
            lock (said)
            {
                said.Add(line);
            }
            Log.Line($"  postgres: {line}");
        }
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var limit = new CancellationTokenSource(ScriptLimit);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"scripts/postgres.sh {action} did not finish within {ScriptLimit.TotalMinutes:F0} minutes.");
        }
        // The exit can be seen before the last output lines are delivered; this waits for them.
        await process.WaitForExitAsync();
        lock (said)
        {
            return (process.ExitCode, [.. said]);
        }
    }
}
