using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Truestock.Server.Http;

/// <summary>The API's scopes.</summary>
internal static class Scopes
{
    public const string EventsWrite = "events:write";
    public const string ReservationsWrite = "reservations:write";
    public const string AvailabilityRead = "availability:read";
    public const string Admin = "admin";
}

/// <summary>
/// API keys with scopes. When no key is configured the API is open (the embedded default for a
/// developer's machine); once one is, every /v1 call needs "Authorization: Bearer &lt;key&gt;".
/// Keys are compared as SHA-256 digests in constant time.
/// </summary>
internal sealed class ApiKeys
{
    private readonly (byte[] Digest, string Name, HashSet<string> Scopes)[] _keys;

    public ApiKeys(IOptions<HubOptions> options)
    {
        _keys = options.Value.ApiKeys
            .Where(k => !string.IsNullOrEmpty(k.Key))
            .Select(k => (SHA256.HashData(Encoding.UTF8.GetBytes(k.Key)), k.Name, k.Scopes.ToHashSet(StringComparer.Ordinal)))
            .ToArray();
    }

    public bool Enabled => _keys.Length > 0;

    public IResult? Check(HttpContext http, string scope)
    {
        if (!Enabled)
        {
            return null;
        }
        var header = http.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            return Unauthorized("Send 'Authorization: Bearer <key>' with an API key.");
        }
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim()));
        foreach (var (d, name, scopes) in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(d, digest))
            {
                return scopes.Contains(scope) || scopes.Contains(Scopes.Admin)
                    ? null
                    : Problems.Create(StatusCodes.Status403Forbidden, "forbidden", "Missing scope.",
                        $"API key '{name}' lacks the scope '{scope}' this call needs.");
            }
        }
        return Unauthorized("The API key is not valid.");
    }

    private static IResult Unauthorized(string detail)
    {
        return new UnauthorizedProblem(detail);
    }

    private sealed class UnauthorizedProblem(string detail) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.WWWAuthenticate = "Bearer";
            return Problems.Create(StatusCodes.Status401Unauthorized, "unauthorized", "Unauthorized.", detail).ExecuteAsync(httpContext);
        }
    }
}

internal static class SecurityExtensions
{
    /// <summary>Requires the scope when API keys are configured (admin implies every scope).</summary>
    public static RouteHandlerBuilder RequireScope(this RouteHandlerBuilder builder, string scope) =>
        builder.AddEndpointFilter(ScopeFilter(scope));

    /// <summary>Requires the scope on every endpoint of a group.</summary>
    public static RouteGroupBuilder RequireScope(this RouteGroupBuilder builder, string scope) =>
        builder.AddEndpointFilter(ScopeFilter(scope));

    private static Func<EndpointFilterInvocationContext, EndpointFilterDelegate, ValueTask<object?>> ScopeFilter(string scope) =>
        async (context, next) =>
        {
            var keys = context.HttpContext.RequestServices.GetRequiredService<ApiKeys>();
            return keys.Check(context.HttpContext, scope) is { } denied ? denied : await next(context);
        };
}

/// <summary>Gives every request a correlation id (the caller's X-Correlation-Id, or a new one) and echoes it.</summary>
internal static class Correlation
{
    public const string Header = "X-Correlation-Id";
    private const string ItemKey = "truestock.correlation-id";

    public static string CorrelationId(this HttpContext http) => (string)http.Items[ItemKey]!;

    public static IApplicationBuilder UseCorrelationIds(this IApplicationBuilder app) => app.Use(async (http, next) =>
    {
        var given = http.Request.Headers[Header].ToString();
        var id = given.Length is > 0 and <= 128 && !given.Any(char.IsControl) ? given : Guid.NewGuid().ToString("N");
        http.Items[ItemKey] = id;
        http.Response.Headers[Header] = id;
        // The exception handler clears headers before it writes its problem; set it again at the last moment.
        http.Response.OnStarting(() =>
        {
            http.Response.Headers[Header] = id;
            return Task.CompletedTask;
        });
        await next(http);
    });
}
