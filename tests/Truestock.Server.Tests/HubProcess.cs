using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Truestock.Server.Tests;

/// <summary>The hub as a child process on a free loopback port, for tests that kill it.</summary>
public sealed class HubProcess(params string[] storageArgs) : IDisposable
{
    private readonly ConcurrentQueue<string> _output = new();
    private Process? _process;

    public HttpClient Client { get; private set; } = null!;

    /// <summary>The last lines the hub printed, for failure messages.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>Starts the hub and waits until it is the writer (or, with <paramref name="asStandby"/>, a standby).</summary>
    public async Task Start(bool asStandby = false)
    {
        var port = FreePort();
        var dll = Path.Combine(AppContext.BaseDirectory, "Truestock.Server.dll");
        var info = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { dll, "--urls", $"http://127.0.0.1:{port}", "--Logging:LogLevel:Default=Warning", "--Truestock:ExpiryTickMilliseconds=100" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in storageArgs)
        {
            info.ArgumentList.Add(arg);
        }
        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, e) => Keep(e.Data);
        _process.ErrorDataReceived += (_, e) => Keep(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        Client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
        await WaitForRole(asStandby ? "standby" : "writer", TimeSpan.FromSeconds(60));
    }

    /// <summary>The role the hub reports on /health/ready, or null when it does not answer.</summary>
    public async Task<string?> Role()
    {
        try
        {
            var response = await Client.GetAsync("/health/ready");
            var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            return body.TryGetProperty("role", out var role) ? role.GetString() : null;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    /// <summary>Waits until the hub reports <paramref name="role"/>; returns how long that took.</summary>
    public async Task<TimeSpan> WaitForRole(string role, TimeSpan limit)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            Assert.False(_process!.HasExited, $"The hub exited with code {(_process.HasExited ? _process.ExitCode : 0)}:\n{Output}");
            if (await Role() == role)
            {
                return watch.Elapsed;
            }
            Assert.True(watch.Elapsed < limit, $"The hub did not become {role} within {limit.TotalSeconds} s (it is {await Role() ?? "silent"}):\n{Output}");
            await Task.Delay(50);
        }
    }

    public void Kill()
    {
        // Process.Kill sends SIGKILL on Unix: no shutdown hook, no final snapshot, no flush.
        _process!.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public void Dispose()
    {
        Client?.Dispose();
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
        }
        _process?.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }
        _output.Enqueue(line);
        while (_output.Count > 200 && _output.TryDequeue(out _))
        {
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
