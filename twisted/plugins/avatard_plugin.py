from twisted.application.service import ServiceMaker

avatard = ServiceMaker("avatard", "avatard.tap", "A directory daemon answering WHO <login>.", "avatard")
