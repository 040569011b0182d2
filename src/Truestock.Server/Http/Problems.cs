namespace Truestock.Server.Http;

/// <summary>Builds RFC 9457 problem+json answers. Every error the API returns goes through here.</summary>
internal static class Problems
{
    public const string TypeBase = "https://truestock.dev/problems/";
    public const string ContentType = "application/problem+json";

    public static IResult Create(int status, string slug, string title, string detail,
        IReadOnlyDictionary<string, string[]>? errors = null, IEnumerable<KeyValuePair<string, object?>>? extensions = null)
    {
        var body = new Dictionary<string, object?>
        {
            ["type"] = TypeBase + slug,
            ["title"] = title,
            ["status"] = status,
            ["detail"] = detail,
        };
        if (errors is not null)
        {
            body["errors"] = errors;
        }
        if (extensions is not null)
        {
            foreach (var (k, v) in extensions)
            {
                // Extensions may never replace a standard member (RFC 9457 §3.2): that would be a bug here.
                if (!body.TryAdd(k, v))
                {
                    throw new InvalidOperationException($"Problem extension '{k}' would replace a standard member.");
                }
            }
        }
        return Results.Json(body, contentType: ContentType, statusCode: status);
    }

    public static IResult Malformed(string detail, IReadOnlyDictionary<string, string[]>? errors = null) =>
        Create(StatusCodes.Status400BadRequest, "malformed-request", "The request is malformed.", detail, errors);

    public static IResult Invalid(string detail, IReadOnlyDictionary<string, string[]>? errors = null) =>
        Create(StatusCodes.Status422UnprocessableEntity, "validation-failed", "The request is invalid.", detail, errors);

    public static IResult Unprocessable(string slug, string detail, string field) =>
        Create(StatusCodes.Status422UnprocessableEntity, slug, "The request is invalid.", detail,
            new Dictionary<string, string[]> { [field] = [detail] });

    public static IResult NotFound(string slug, string detail) =>
        Create(StatusCodes.Status404NotFound, slug, "Not found.", detail);

    public static IResult Conflict(string slug, string title, string detail, IEnumerable<KeyValuePair<string, object?>>? extensions = null) =>
        Create(StatusCodes.Status409Conflict, slug, title, detail, extensions: extensions);

    public static IResult TooLarge(long limit) =>
        Create(StatusCodes.Status413PayloadTooLarge, "body-too-large", "The request body is too large.",
            $"Request bodies are limited to {limit} bytes. Split the request into smaller ones.");
}
