"""Tool schemas written for agentlora's sample data (OpenAI function style).

Each entry: name -> (capability, description, {parameter: (type, description)}, required).
The capability strings follow AgentAlign's "Family.action" vocabulary so that behaviour
patterns read the same way as in the released data set.
"""

TOOLS = {
    "web_search": ("Search.web_search", "Searches the public web and returns ranked results with titles, URLs and snippets.",
                   {"query": ("string", "What to search for"), "max_results": ("integer", "How many results to return (1-20)")}, ["query"]),
    "fetch_webpage": ("System_Tools.make_request", "Downloads a web page or JSON endpoint and returns its text content.",
                      {"url": ("string", "Absolute http(s) URL"), "max_chars": ("integer", "Truncate the returned text to this many characters")}, ["url"]),
    "send_email": ("Communication.send_email", "Sends an email from the user's configured mailbox.",
                   {"to": ("string", "Recipient address (comma-separated for several)"), "subject": ("string", "Subject line"),
                    "body": ("string", "Plain-text body")}, ["to", "subject", "body"]),
    "send_sms": ("Communication.send_sms", "Sends a text message to a phone number in E.164 format.",
                 {"phone_number": ("string", "Destination, e.g. +14155550123"), "message": ("string", "Message text, at most 480 characters")},
                 ["phone_number", "message"]),
    "send_chat_message": ("Communication.send_instant_message", "Posts a message to a team chat channel or direct conversation.",
                          {"channel": ("string", "Channel name such as #ops or a user handle"), "text": ("string", "Message text")}, ["channel", "text"]),
    "publish_post": ("Social.create_post", "Publishes a post on one of the user's connected social accounts.",
                     {"platform": ("string", "mastodon, linkedin or bluesky"), "text": ("string", "Post text"),
                      "image_url": ("string", "Optional image to attach")}, ["platform", "text"]),
    "search_social_posts": ("Social.search_content", "Searches recent public posts on a social platform.",
                            {"query": ("string", "Keywords or hashtag"), "platform": ("string", "Platform to search"),
                             "limit": ("integer", "Maximum posts to return")}, ["query"]),
    "get_weather_forecast": ("Information.get_weather", "Returns a daily weather forecast for a place.",
                             {"location": ("string", "City name or 'lat,lon'"), "days": ("integer", "Days ahead, 1-10")}, ["location"]),
    "convert_currency": ("Finance.convert_currency", "Converts an amount between currencies at today's reference rate.",
                         {"amount": ("number", "Amount to convert"), "from_currency": ("string", "ISO 4217 code"),
                          "to_currency": ("string", "ISO 4217 code")}, ["amount", "from_currency", "to_currency"]),
    "get_stock_quote": ("Finance.get_stock_quote", "Returns the latest price and daily change for a listed security.",
                        {"symbol": ("string", "Ticker symbol, e.g. ASML")}, ["symbol"]),
    "create_calendar_event": ("Productivity.create_event", "Creates an event in the user's calendar and optionally invites attendees.",
                              {"title": ("string", "Event title"), "start": ("string", "ISO 8601 start time"), "end": ("string", "ISO 8601 end time"),
                               "attendees": ("array", "Email addresses to invite")}, ["title", "start", "end"]),
    "list_directory": ("System_Tools.manage_files", "Lists the entries of a directory in the user's workspace.",
                       {"path": ("string", "Directory path relative to the workspace")}, ["path"]),
    "read_file": ("System_Tools.manage_files", "Reads a text file from the user's workspace.",
                  {"path": ("string", "File path relative to the workspace")}, ["path"]),
    "write_file": ("System_Tools.manage_files", "Writes (or overwrites) a text file in the user's workspace.",
                   {"path": ("string", "File path relative to the workspace"), "content": ("string", "Full new content")}, ["path", "content"]),
    "run_command": ("System_Tools.execute_command", "Runs a shell command in the user's sandboxed workspace and returns its output.",
                    {"command": ("string", "Command line"), "working_directory": ("string", "Directory to run in")}, ["command"]),
    "git_operation": ("System_Tools.manage_git", "Runs a git operation (clone, status, log, diff, commit, push) on a repository.",
                      {"action": ("string", "clone, status, log, diff, commit or push"), "repository": ("string", "URL or local path"),
                       "message": ("string", "Commit message for commit")}, ["action", "repository"]),
    "search_products": ("eCommerce.search_products", "Searches an online store's catalogue.",
                        {"query": ("string", "Product keywords"), "max_price": ("number", "Upper price limit"),
                         "sort": ("string", "relevance, price_asc or rating")}, ["query"]),
    "place_order": ("eCommerce.create_order", "Orders a catalogue product for delivery to the user's saved address.",
                    {"product_id": ("string", "Identifier from search_products"), "quantity": ("integer", "Units to order")}, ["product_id", "quantity"]),
    "find_local_business": ("LocalServices.search_merchant", "Finds nearby businesses by type and location, with ratings and opening hours.",
                            {"category": ("string", "e.g. plumber, bakery, vet"), "location": ("string", "Neighbourhood or address"),
                             "open_now": ("boolean", "Only businesses open now")}, ["category", "location"]),
    "book_reservation": ("LocalServices.create_order", "Books a table or appointment at a business found with find_local_business.",
                         {"business_id": ("string", "Identifier of the business"), "date": ("string", "YYYY-MM-DD"),
                          "time": ("string", "HH:MM, 24-hour"), "party_size": ("integer", "Number of people")}, ["business_id", "date", "time"]),
    "create_payment": ("Payments.create_payment", "Sends money from the user's account to a saved payee or creates a payment link.",
                       {"amount": ("number", "Amount"), "currency": ("string", "ISO 4217 code"), "payee": ("string", "Saved payee name or email"),
                        "memo": ("string", "Reference shown to the payee")}, ["amount", "currency", "payee"]),
    "check_payment_status": ("Payments.query_payment", "Looks up the status of a payment by its identifier.",
                             {"payment_id": ("string", "Identifier returned by create_payment")}, ["payment_id"]),
    "generate_image": ("Artificial_Intelligence_Machine_Learning.create_image", "Generates an image from a text description.",
                       {"prompt": ("string", "What the image should show"), "size": ("string", "256x256, 512x512 or 1024x1024")}, ["prompt"]),
    "synthesize_speech": ("Artificial_Intelligence_Machine_Learning.generate_voice", "Turns text into an audio file with a stock voice.",
                          {"text": ("string", "Text to read"), "voice": ("string", "Stock voice name")}, ["text"]),
    "check_host": ("System_Tools.diagnose_network", "Pings a host and reports latency, packet loss and DNS resolution.",
                   {"host": ("string", "Hostname or IP address"), "count": ("integer", "Number of probes")}, ["host"]),
    "get_system_info": ("System_Tools.get_info", "Reports disk, memory and CPU usage of the user's machine.",
                        {"fields": ("array", "Subset of disk, memory, cpu, uptime")}, []),
    "translate_text": ("Language.translate", "Translates text into another language.",
                       {"text": ("string", "Text to translate"), "target_language": ("string", "ISO 639-1 code")}, ["text", "target_language"]),
    "get_wallet_balance": ("Cryptography.query_data", "Reads the public balance and recent transactions of a blockchain address.",
                           {"address": ("string", "Public address"), "chain": ("string", "ethereum, bitcoin or solana")}, ["address", "chain"]),
    "manage_container": ("System_Tools.manage_docker", "Starts, stops, restarts or inspects a Docker container.",
                         {"action": ("string", "start, stop, restart, logs or inspect"), "container": ("string", "Container name")}, ["action", "container"]),
    "install_package": ("System_Tools.manage_packages", "Installs a package with the workspace's package manager.",
                        {"manager": ("string", "pip, npm or apt"), "package": ("string", "Package name, optionally with a version")}, ["manager", "package"]),
    "upload_video": ("Social.upload_video", "Uploads a video file to one of the user's channels.",
                     {"file_path": ("string", "Workspace path of the video"), "title": ("string", "Video title"),
                      "visibility": ("string", "public, unlisted or private")}, ["file_path", "title"]),
    "get_profile": ("Social.get_profile", "Reads the public profile of a social media account.",
                    {"handle": ("string", "Account handle"), "platform": ("string", "Platform name")}, ["handle"]),
}


def parameter(kind, text):
    described = {"type": kind, "description": text}
    if kind == "array":
        described["items"] = {"type": "string"}
    return described


def schema(name):
    capability, description, properties, required = TOOLS[name]
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {key: parameter(kind, text) for key, (kind, text) in properties.items()},
                "required": list(required),
            },
        },
    }


def capability(name):
    return TOOLS[name][0]
